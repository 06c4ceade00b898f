// The uv_poll lifecycle shared by the TUN device and the UDP socket (see poller.h).
#include <stdio.h>

#include "poller.h"

static int may_free(const poller_t *p) {
  return p->finalized && (!p->init || p->closed) && !p->in_callback;
}

static void on_closed(uv_handle_t *h) {
  poller_t *p = (poller_t *)h;
  p->closed = 1;
  if (may_free(p)) p->free_owner(p->owner);
}

void poller_setup(poller_t *p, napi_env env, void *owner, void (*free_owner)(void *owner)) {
  p->env = env;
  p->owner = owner;
  p->free_owner = free_owner;
}

int poller_start(poller_t *p, int fd, napi_value self, napi_value on_batch, napi_value on_error, uv_poll_cb cb,
                 const char *what) {
  napi_env env = p->env;
  char msg[96];
  if (!p->init) {
    uv_loop_t *loop;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      throw_code(env, "EFAULT", "no event loop", 0);
      return -1;
    }
    int r = uv_poll_init(loop, &p->handle, fd);
    if (r < 0) {
      snprintf(msg, sizeof msg, "%s (uv_poll_init)", what);
      throw_errno(env, -r, msg);
      return -1;
    }
    p->handle.data = p->owner;
    p->init = 1;
  }
  drop_ref(env, &p->on_batch);
  drop_ref(env, &p->on_error);
  if (napi_create_reference(env, on_batch, 1, &p->on_batch) != napi_ok ||
      (on_error && napi_create_reference(env, on_error, 1, &p->on_error) != napi_ok) ||
      (!p->self && napi_create_reference(env, self, 1, &p->self) != napi_ok)) {
    throw_code(env, "EFAULT", "cannot keep the callbacks", 0);
    return -1;
  }
  if (!p->polling) {
    int r = uv_poll_start(&p->handle, UV_READABLE, cb);
    if (r < 0) {
      poller_stop(p);
      snprintf(msg, sizeof msg, "%s (uv_poll_start)", what);
      throw_errno(env, -r, msg);
      return -1;
    }
    p->polling = 1;
  }
  return 0;
}

void poller_stop(poller_t *p) {
  if (p->polling) {
    uv_poll_stop(&p->handle);
    p->polling = 0;
  }
  drop_ref(p->env, &p->on_batch);
  drop_ref(p->env, &p->on_error);
  drop_ref(p->env, &p->self);
}

void poller_close(poller_t *p) {
  poller_stop(p);
  if (p->init && !p->closed && !uv_is_closing((uv_handle_t *)&p->handle)) uv_close((uv_handle_t *)&p->handle, on_closed);
}

void poller_finalized(poller_t *p) {
  p->finalized = 1;
  if (may_free(p)) p->free_owner(p->owner);
}

void poller_enter(poller_t *p) {
  napi_open_handle_scope(p->env, &p->scope);
  p->in_callback = 1;
}

void poller_leave(poller_t *p) {
  p->in_callback = 0;
  napi_close_handle_scope(p->env, p->scope);
  if (may_free(p)) p->free_owner(p->owner);
}

int poller_deliver(poller_t *p, napi_async_context actx, size_t argc, napi_value *argv) {
  napi_value fn;
  napi_get_reference_value(p->env, p->on_batch, &fn);
  call_js(p->env, actx, fn, argc, argv);
  return p->polling;
}

void poller_fail(poller_t *p, napi_async_context actx, int err, const char *what) {
  napi_ref on_error = p->on_error;
  p->on_error = NULL;
  poller_stop(p);
  report_error(p->env, actx, on_error, err, what);
  if (on_error) napi_delete_reference(p->env, on_error);
}
