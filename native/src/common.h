// Shared helpers of the meshward addon: N-API argument checks and errno-named errors.
#ifndef MESHWARD_COMMON_H
#define MESHWARD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

// Sets a pending JS Error whose code is the errno name and whose message is "<what>: <strerror>". Returns NULL.
napi_value throw_errno(napi_env env, int err, const char *what);
// Makes (does not throw) the same error.
napi_value make_errno_error(napi_env env, int err, const char *what);
// Sets a pending Error (RangeError when range != 0) with the given code and message. Returns NULL.
napi_value throw_code(napi_env env, const char *code, const char *msg, int range);

// Argument readers: each throws (and returns -1) when the argument has the wrong type.
int arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out);
int arg_bool(napi_env env, napi_value v, const char *what, int *out);
int arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t size);
// A TypedArray (or Buffer) of the given type; its data and element count.
int arg_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *what, void **data, size_t *len);
// A function, or undefined/null (then *out = NULL).
int arg_func_opt(napi_env env, napi_value v, const char *what, napi_value *out);

// Calls fn(argv...) from a libuv callback: runs microtasks afterwards and routes an exception to
// onError (when given) or to the process as an uncaught exception.
void call_js(napi_env env, napi_async_context ctx, napi_value fn, size_t argc, napi_value *argv);
// Reports an error to onError (a napi_ref, may be NULL) or as an uncaught exception.
void report_error(napi_env env, napi_async_context ctx, napi_ref on_error, int err, const char *what);
// Deletes *r (when set) and clears it.
void drop_ref(napi_env env, napi_ref *r);

// Module parts.
napi_status tun_init(napi_env env, napi_value exports);
napi_status udp_init(napi_env env, napi_value exports);
napi_status aead_init(napi_env env, napi_value exports);
napi_status sockopt_init(napi_env env, napi_value exports);

// rtnetlink (netlink.c): 0 or an errno.
int nl_add_address(int ifindex, int family, const void *addr, int prefix);
int nl_del_address(int ifindex, int family, const void *addr, int prefix);
int nl_add_route(int ifindex, int family, const void *dst, int prefix);
// Parses "addr/prefix" (IPv4 or IPv6). Returns 0, or -1 with a reason in why. addr must hold 16 bytes.
int parse_cidr(const char *s, int *family, uint8_t *addr, int *prefix, const char **why);

#define NAPI_CALL(env, call)                                                                   \
  do {                                                                                         \
    if ((call) != napi_ok) {                                                                   \
      const napi_extended_error_info *info__;                                                  \
      napi_get_last_error_info((env), &info__);                                                \
      bool pending__;                                                                          \
      napi_is_exception_pending((env), &pending__);                                            \
      if (!pending__)                                                                          \
        napi_throw_error((env), "EFAULT",                                                     \
                         info__ && info__->error_message ? info__->error_message : "napi call failed"); \
      return NULL;                                                                             \
    }                                                                                          \
  } while (0)

#endif
