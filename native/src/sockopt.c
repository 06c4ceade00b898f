// TCP_USER_TIMEOUT on a socket Node already owns (by its file descriptor): how long sent data may stay
// unacknowledged before the kernel aborts the connection (ETIMEDOUT). Node has no API for it; coord uses
// it so that a device whose network vanished without a FIN or RST is noticed in seconds, not after the
// ~15 minutes of retransmissions Linux allows by default (tcp_retries2).
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common.h"

// tcpSetUserTimeout(fd, ms): 0 turns it off (the kernel's default behaviour).
static napi_value tcp_set_user_timeout(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd, ms;
  if (arg_u32(env, argv[0], "fd", &fd) || arg_u32(env, argv[1], "ms", &ms)) return NULL;
  unsigned int v = ms;
  if (setsockopt((int)fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) < 0) return throw_errno(env, errno, "setsockopt TCP_USER_TIMEOUT");
  return NULL;
}

// tcpUserTimeout(fd): the value in force, in ms.
static napi_value tcp_user_timeout(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (arg_u32(env, argv[0], "fd", &fd)) return NULL;
  unsigned int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt((int)fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &len) < 0) return throw_errno(env, errno, "getsockopt TCP_USER_TIMEOUT");
  NAPI_CALL(env, napi_create_uint32(env, v, &out));
  return out;
}

napi_status sockopt_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tcpSetUserTimeout", NULL, tcp_set_user_timeout, NULL, NULL, NULL, napi_default, NULL},
      {"tcpUserTimeout", NULL, tcp_user_timeout, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
