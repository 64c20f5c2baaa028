/*
 * message_bus — services that talk only through channels, and the one nobody tells to stop.
 *
 * The story: an in-process message bus. An "orders" producer publishes orders on a channel; a
 * router task fans every order out to one channel per subscriber: "billing", "shipping" and
 * "audit". Every consumer loops on tsk_channel_recv and stops when its channel is closed and
 * drained (TSK_ECLOSED) — the usual Go-style shutdown protocol. When the orders channel closes,
 * the router shuts down and closes its outputs... except the audit channel, which was added
 * later as a "best-effort" subscriber and forgotten in the shutdown path. The audit consumer has
 * processed every order and now waits for the next one, which will never come: it can never
 * finish, and since it was started as a background service nobody joins it.
 *
 * Default (buggy) mode: router_shutdown() closes the billing and shipping channels only. The
 * leak report at tsk_runtime_close shows one destroyed_pending record: task "audit_consumer"
 * (created in start_audit_service, suspended in audit_consumer in tsk_channel_recv, awaiting
 * a channel).
 *
 * --fixed: router_shutdown() closes every output channel; every consumer drains its channel,
 * sees TSK_ECLOSED and returns; main joins every task, the audit consumer included. The report
 * is empty.
 *
 *   message_bus [--fixed] [--orders N] [--help]
 */
#include "taskscope.h"
#include "common/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define OUTPUTS 3

typedef struct order {
  int id;
  const char *customer;
  const char *item;
  int qty;
  int cents; /* per item */
} order;

typedef struct bus {
  tsk_runtime_t *rt;
  int fixed;
  int norders;
  tsk_channel_t *orders;           /* orders -> router */
  tsk_channel_t *out[OUTPUTS];     /* router -> billing, shipping, audit */
  /* what each service did (read by main at the end) */
  int published, routed;
  long billed_cents;
  int invoices, parcels, audited;
} bus;

enum { BILLING, SHIPPING, AUDIT };
static const char *const output_names[OUTPUTS] = {"billing", "shipping", "audit"};

/* ---- the producer ---- */

static int orders_service(void *arg) {
  bus *b = arg;
  static const char *customers[] = {"alice", "bob", "carol", "dave", "erin"};
  static const char *items[] = {"widget", "gadget", "sprocket", "gizmo"};
  int rc = 0;
  for (int i = 0; i < b->norders && rc == 0; i++) {
    order *o = malloc(sizeof *o);
    if (!o) {
      rc = TSK_ENOMEM;
      break;
    }
    *o = (order){.id = 1001 + i, .customer = customers[i % 5], .item = items[i % 4],
                 .qty = 1 + i % 3, .cents = 250 + 125 * (i % 7)};
    if (i < 3)
      printf("  orders:   #%d %s buys %d x %s at $%d.%02d\n", o->id, o->customer, o->qty,
             o->item, o->cents / 100, o->cents % 100);
    if ((rc = tsk_channel_send(b->orders, o, TSK_FOREVER)) != 0) {
      free(o);
      break;
    }
    b->published++;
    rc = tsk_sleep(2);
  }
  tsk_channel_close(b->orders); /* no more orders: the router drains and shuts down */
  printf("  orders:   published %d orders, channel closed\n", b->published);
  return rc;
}

/* ---- the router ---- */

/* THE BUG: shutting down, the router closes the outputs it was first written with; the audit
 * output, added later, is forgotten in the default mode — its consumer waits forever. */
static NOINLINE void router_shutdown(bus *b) {
  tsk_channel_close(b->out[BILLING]);
  tsk_channel_close(b->out[SHIPPING]);
  if (b->fixed) tsk_channel_close(b->out[AUDIT]);
}

/* Fans every order out to each subscriber's channel (a copy each), until the orders channel is
 * closed and drained. */
static int route_orders(void *arg) {
  bus *b = arg;
  int rc;
  for (;;) {
    order *o;
    if ((rc = tsk_channel_recv(b->orders, (void **)&o, TSK_FOREVER)) != 0) break;
    for (int k = 0; k < OUTPUTS && rc == 0; k++) {
      order *copy = malloc(sizeof *copy);
      if (!copy) {
        rc = TSK_ENOMEM;
        break;
      }
      *copy = *o;
      if ((rc = tsk_channel_send(b->out[k], copy, TSK_FOREVER)) != 0) free(copy);
    }
    free(o);
    if (rc) break;
    b->routed++;
  }
  router_shutdown(b);
  printf("  router:   routed %d orders to %d subscribers, shutting down\n", b->routed, OUTPUTS);
  return rc == TSK_ECLOSED ? 0 : rc;
}

/* ---- the consumers: each drains its channel and stops at TSK_ECLOSED ---- */

static int billing_consumer(void *arg) {
  bus *b = arg;
  order *o;
  int rc;
  while ((rc = tsk_channel_recv(b->out[BILLING], (void **)&o, TSK_FOREVER)) == 0) {
    b->billed_cents += (long)o->qty * o->cents;
    b->invoices++;
    free(o);
  }
  printf("  billing:  %d invoices, $%ld.%02ld billed; channel closed, exiting\n", b->invoices,
         b->billed_cents / 100, b->billed_cents % 100);
  return rc == TSK_ECLOSED ? 0 : rc;
}

static int shipping_consumer(void *arg) {
  bus *b = arg;
  order *o;
  int rc;
  while ((rc = tsk_channel_recv(b->out[SHIPPING], (void **)&o, TSK_FOREVER)) == 0) {
    b->parcels += o->qty;
    free(o);
    if ((rc = tsk_sleep(1)) != 0) break; /* "printing the label" */
  }
  printf("  shipping: %d parcels labelled; channel closed, exiting\n", b->parcels);
  return rc == TSK_ECLOSED ? 0 : rc;
}

static int audit_consumer(void *arg) {
  bus *b = arg;
  order *o;
  int rc;
  while ((rc = tsk_channel_recv(b->out[AUDIT], (void **)&o, TSK_FOREVER)) == 0) {
    b->audited++;
    free(o);
  }
  printf("  audit:    %d orders recorded; channel closed, exiting\n", b->audited);
  return rc == TSK_ECLOSED ? 0 : rc;
}

/* The audit service runs "in the background": in the default mode it is detached at once, on
 * the assumption that it stops by itself when its channel closes. --fixed keeps the handle. */
static NOINLINE int start_audit_service(bus *b, tsk_task_t *out) {
  int rc = tsk_spawn(b->rt, out, "audit_consumer", audit_consumer, b);
  if (rc == 0 && !b->fixed) {
    tsk_detach(*out);
    out->id = 0;
  }
  return rc;
}

static int main_task(void *arg) {
  bus *b = arg;
  int rc;
  if ((rc = tsk_channel_new(b->rt, 4, &b->orders)) != 0) return rc;
  for (int k = 0; k < OUTPUTS; k++)
    if ((rc = tsk_channel_new(b->rt, 8, &b->out[k])) != 0) return rc;

  tsk_task_t producer, router, billing, shipping, audit;
  if ((rc = tsk_spawn(b->rt, &billing, "billing_consumer", billing_consumer, b)) ||
      (rc = tsk_spawn(b->rt, &shipping, "shipping_consumer", shipping_consumer, b)) ||
      (rc = start_audit_service(b, &audit)) ||
      (rc = tsk_spawn(b->rt, &router, "route_orders", route_orders, b)) ||
      (rc = tsk_spawn(b->rt, &producer, "orders_service", orders_service, b)))
    return tsk_error(rc, "spawn: %s", tsk_strerror(rc));

  int failed = 0;
  failed |= tsk_join(producer, TSK_FOREVER, NULL) != 0;
  failed |= tsk_join(router, TSK_FOREVER, NULL) != 0;
  failed |= tsk_join(billing, TSK_FOREVER, NULL) != 0;
  failed |= tsk_join(shipping, TSK_FOREVER, NULL) != 0;
  if (audit.id) failed |= tsk_join(audit, TSK_FOREVER, NULL) != 0;
  else
    printf("  audit:    %d orders recorded, still waiting on its channel (never closed)\n",
           b->audited);

  /* (in the default mode the audit consumer is not joined: its count may still lag) */
  int ok = !failed && b->invoices == b->norders && (!b->fixed || b->audited == b->norders);
  printf("  bus: %d published, %d billed, %d audited; subscribers' channels closed: %s\n",
         b->published, b->invoices, b->audited,
         b->fixed ? "all" : "billing, shipping (audit forgotten)");
  for (int k = 0; k < OUTPUTS; k++) { /* only after a failure: nothing is left otherwise */
    void *m;
    if (tsk_channel_len(b->out[k]))
      printf("  bus: %zu messages left in %s\n", tsk_channel_len(b->out[k]), output_names[k]);
    while (tsk_channel_try_recv(b->out[k], &m) == 0) free(m);
  }
  return ok ? 0 : tsk_error(TSK_EFAILED, "a service failed or lost orders");
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--fixed] [--orders N] [--help]\n"
          "  orders -> router -> {billing, shipping, audit}, all through channels.\n"
          "  default   the router forgets to close the audit channel at shutdown; the audit\n"
          "            consumer waits forever (destroyed_pending in the leak report)\n"
          "  --fixed   every output channel closed; consumers drain and exit; all joined\n"
          "  --orders N  orders to publish (default 24)\n",
          prog);
}

int main(int argc, char **argv) {
  bus b = {.norders = 24};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--fixed") == 0) {
      b.fixed = 1;
    } else if (strcmp(argv[i], "--orders") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 1000000, &b.norders) != 0) goto bad;
    } else {
      goto bad;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up as they happen */
  int rc = tsk_runtime_new(&b.rt);
  if (rc) {
    fprintf(stderr, "message_bus: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("message_bus: orders -> router -> billing, shipping, audit (%s)\n",
         b.fixed ? "--fixed: every channel closed at shutdown"
                 : "buggy: audit channel never closed");
  tsk_result_t res;
  rc = tsk_run_main(b.rt, "main", main_task, &b, &res);
  tsk_runtime_close(b.rt); /* the leak report, if any, is printed here */
  /* Freed only now: in the default mode a task destroyed by the close was waiting on one. */
  tsk_channel_t *all[] = {b.orders, b.out[0], b.out[1], b.out[2]};
  for (int k = 0; k < 4; k++)
    if (all[k]) tsk_channel_free(all[k]);
  if (rc) {
    printf("message_bus: failed: %s\n", res.message[0] ? res.message : tsk_strerror(rc));
    return 1;
  }
  printf("message_bus: done\n");
  return 0;
bad:
  usage(stderr, argv[0]);
  return 2;
}
