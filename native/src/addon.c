// meshward_native: module entry and shared helpers (errors, argument checks, calling JS from libuv).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "common.h"

static napi_value make_error(napi_env env, const char *code, const char *msg, int range, int err) {
  napi_value jcode, jmsg, error;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  if (range)
    napi_create_range_error(env, jcode, jmsg, &error);
  else
    napi_create_error(env, jcode, jmsg, &error);
  if (err) {
    napi_value jerrno;
    napi_create_int32(env, -err, &jerrno);  // negative, as in Node's own system errors
    napi_set_named_property(env, error, "errno", jerrno);
  }
  return error;
}

napi_value make_errno_error(napi_env env, int err, const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  return make_error(env, uv_err_name(-err), msg, 0, err);
}

napi_value throw_errno(napi_env env, int err, const char *what) {
  napi_throw(env, make_errno_error(env, err, what));
  return NULL;
}

napi_value throw_code(napi_env env, const char *code, const char *msg, int range) {
  napi_throw(env, make_error(env, code, msg, range, 0));
  return NULL;
}

static int type_error(napi_env env, const char *what, const char *expected) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s must be %s", what, expected);
  napi_value jcode, jmsg, error;
  napi_create_string_utf8(env, "EINVAL", NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_type_error(env, jcode, jmsg, &error);
  napi_throw(env, error);
  return -1;
}

int arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return type_error(env, what, "a number");
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s must be an integer 0..4294967295", what);
    throw_code(env, "EINVAL", msg, 1);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

int arg_bool(napi_env env, napi_value v, const char *what, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) return type_error(env, what, "a boolean");
  *out = b;
  return 0;
}

int arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return type_error(env, what, "a string");
  if (len >= size) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s is too long (%zu bytes, at most %zu)", what, len, size - 1);
    throw_code(env, "EINVAL", msg, 1);
    return -1;
  }
  napi_get_value_string_utf8(env, v, buf, size, &len);
  if (strlen(buf) != len) return type_error(env, what, "a string without NUL characters");
  return 0;
}

int arg_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *what, void **data, size_t *len) {
  static const char *names[] = {"an Int8Array", "a Uint8Array", "a Uint8ClampedArray", "an Int16Array",
                                "a Uint16Array", "an Int32Array", "a Uint32Array", "a Float32Array",
                                "a Float64Array", "a BigInt64Array", "a BigUint64Array"};
  bool is;
  napi_typedarray_type t;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return type_error(env, what, names[type]);
  if (napi_get_typedarray_info(env, v, &t, len, data, NULL, NULL) != napi_ok || t != type)
    return type_error(env, what, names[type]);
  return 0;
}

int arg_func_opt(napi_env env, napi_value v, const char *what, napi_value *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) {
    *out = NULL;
    return 0;
  }
  if (t != napi_function) return type_error(env, what, "a function");
  *out = v;
  return 0;
}

void call_js(napi_env env, napi_async_context ctx, napi_value fn, size_t argc, napi_value *argv) {
  napi_value recv, result;
  napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
  if (napi_make_callback(env, ctx, recv, fn, argc, argv, &result) != napi_ok) {
    bool pending;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);  // like a throwing event listener: process 'uncaughtException'
    }
  }
}

void report_error(napi_env env, napi_async_context ctx, napi_ref on_error, int err, const char *what) {
  napi_value error = make_errno_error(env, err, what), fn = NULL;
  if (on_error) napi_get_reference_value(env, on_error, &fn);
  if (fn)
    call_js(env, ctx, fn, 1, &error);
  else
    napi_fatal_exception(env, error);
}

void drop_ref(napi_env env, napi_ref *r) {
  if (*r) {
    napi_delete_reference(env, *r);
    *r = NULL;
  }
}

static napi_value init(napi_env env, napi_value exports) {
  if (tun_init(env, exports) != napi_ok || udp_init(env, exports) != napi_ok || aead_init(env, exports) != napi_ok ||
      sockopt_init(env, exports) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
