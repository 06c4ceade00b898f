// One uv_poll watcher over a non-blocking file descriptor, for an object JS holds (a TUN device, a UDP
// socket). It owns the reading state (the onBatch/onError callbacks, a reference that keeps the JS handle
// alive while reading) and the rule that keeps the owner's memory safe: the owner is freed only when
// all three hold: JS has finalized the handle, libuv has closed the watcher (uv_close completes on a
// later loop turn), and no poll callback is running (JS may drop the last reference from inside one).
#ifndef MESHWARD_POLLER_H
#define MESHWARD_POLLER_H

#include <uv.h>

#include "common.h"

typedef struct {
  uv_poll_t handle;  // first member: libuv hands back &handle, which is the poller
  napi_env env;
  void *owner;
  void (*free_owner)(void *owner);
  napi_ref on_batch, on_error, self;
  int init, polling, closed, in_callback, finalized;
  napi_handle_scope scope;
} poller_t;

// Ties the poller to its owner; free_owner releases the owner's memory (the poller lives inside it).
void poller_setup(poller_t *p, napi_env env, void *owner, void (*free_owner)(void *owner));

// Starts (or re-targets) reading fd: cb runs when it is readable, with handle->data == owner. Keeps
// onBatch, onError (may be NULL) and the JS handle `self` referenced until poller_stop. On failure
// throws "<what> (uv_poll_init|uv_poll_start): ..." and returns -1.
int poller_start(poller_t *p, int fd, napi_value self, napi_value on_batch, napi_value on_error, uv_poll_cb cb,
                 const char *what);

// Stops reading and drops the callbacks and the handle reference. Idempotent.
void poller_stop(poller_t *p);

// Stops reading and closes the watcher; call before closing the descriptor. Idempotent.
void poller_close(poller_t *p);

// The owner's JS handle was finalized: frees the owner now, or once the watcher is closed and no
// callback is running.
void poller_finalized(poller_t *p);

// Brackets the JS part of a poll callback: a handle scope, and "a callback is running".
void poller_enter(poller_t *p);
// Ends it; frees the owner when it was finalized meanwhile (then the owner must not be touched again).
void poller_leave(poller_t *p);

// Calls onBatch(argv...) (inside poller_enter/leave). Returns whether reading goes on (not stopped or
// closed by the callback).
int poller_deliver(poller_t *p, napi_async_context actx, size_t argc, napi_value *argv);

// A read error ends reading: stops, then hands the error to onError (or reports it as uncaught).
void poller_fail(poller_t *p, napi_async_context actx, int err, const char *what);

#endif
