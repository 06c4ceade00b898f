// Batched UDP socket: recvmmsg/sendmmsg on a non-blocking socket watched by uv_poll. Received datagrams
// and their sources go into memory allocated once (and shared with JS); sends take per-datagram
// destinations in the same layout.
//
// Offloads, invisible to JS: with GSO, consecutive datagrams of one size to one destination leave as one
// UDP_SEGMENT message (the kernel splits them, late); with GRO, the kernel may hand over several
// datagrams of one flow coalesced (UDP_GRO), which are split back into separate entries here.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"
#include "poller.h"

#define GSO_MAX_SEGMENTS 64     // the kernel's UDP_MAX_SEGMENTS
#define GSO_MAX_BYTES 65000     // payload of one GSO message, below the 65507 limit of a UDP datagram
#define GRO_SLOT 65536          // a coalesced datagram can be this large
#define RCTRL CMSG_SPACE(sizeof(int))
#define SCTRL CMSG_SPACE(sizeof(uint16_t))

typedef struct {
  napi_env env;
  int fd;      // -1 once closed
  int family;  // AF_INET or AF_INET6 (dual-stack when bound to ::)
  uint16_t port;
  int gso, gro;           // offloads in use
  uint32_t gso_limit;     // largest segment size to send with GSO (lowered when the kernel refuses one: path MTU)
  uint32_t batch;         // most entries per onBatch call, most datagrams per sendmmsg chunk
  uint32_t slot;          // bytes per receive slot (maxPacket, or GRO_SLOT with GRO)
  size_t stride;          // slot rounded up to 16
  char *rctrl, *sctrl;    // control messages (UDP_GRO in, UDP_SEGMENT out), one per message
  uint32_t *spk;          // datagrams in each outgoing message
  size_t *sbytes;         // bytes in each outgoing message
  // shared with JS (backing stores of the referenced objects)
  uint8_t *buf;
  uint32_t *offsets, *lengths;
  uint8_t *addrs;  // 16 bytes per datagram
  uint16_t *ports;
  uint8_t *families;
  napi_ref buf_ref, off_ref, len_ref, addr_ref, port_ref, fam_ref;
  // kernel-side descriptors, prepared once
  struct mmsghdr *rmsgs, *smsgs;
  struct iovec *riov, *siov;
  struct sockaddr_in6 *rnames, *snames;
  napi_async_context actx;
  poller_t poller;
  double stats[8];  // rxPackets, rxBytes, rxTruncated, txPackets, txBytes, txDropped, rxCoalesced, txCoalesced
} udp_t;

static void udp_free(void *p) {
  udp_t *u = p;
  free(u->rctrl);
  free(u->sctrl);
  free(u->spk);
  free(u->sbytes);
  free(u->rmsgs);
  free(u->smsgs);
  free(u->riov);
  free(u->siov);
  free(u->rnames);
  free(u->snames);
  free(u);
}

static void udp_do_close(udp_t *u) {
  if (u->fd < 0) return;
  poller_close(&u->poller);
  close(u->fd);
  u->fd = -1;
}

static void udp_finalize(napi_env env, void *data, void *hint) {
  udp_t *u = data;
  udp_do_close(u);
  napi_ref *refs[] = {&u->buf_ref, &u->off_ref, &u->len_ref, &u->addr_ref, &u->port_ref, &u->fam_ref};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) drop_ref(env, refs[i]);
  if (u->actx) napi_async_destroy(env, u->actx);
  u->actx = NULL;
  poller_finalized(&u->poller);
}

static udp_t *get_udp(napi_env env, napi_value v, int allow_closed) {
  udp_t *u = NULL;
  if (napi_unwrap(env, v, (void **)&u) != napi_ok || !u) {
    throw_code(env, "EINVAL", "not a UDP socket handle", 0);
    return NULL;
  }
  if (!allow_closed && u->fd < 0) {
    napi_throw(env, make_errno_error(env, EBADF, "UDP socket is closed"));
    return NULL;
  }
  return u;
}

static napi_status typed(napi_env env, napi_value ab, napi_typedarray_type type, size_t len, size_t off,
                         napi_ref *ref) {
  napi_value ta;
  napi_status s = napi_create_typedarray(env, type, len, ab, off, &ta);
  if (s == napi_ok) s = napi_create_reference(env, ta, 1, ref);
  return s;
}

// udpBind(port, host, batch, slot, rcvbuf, sndbuf, offload) -> handle { port, gso, gro }
// offload: bit 0 = try GSO, bit 1 = try GRO.
static napi_value udp_bind(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t port, batch, slot, rcvbuf, sndbuf, offload;
  char host[64];
  if (arg_u32(env, argv[0], "port", &port) || arg_string(env, argv[1], "host", host, sizeof host) ||
      arg_u32(env, argv[2], "batch", &batch) || arg_u32(env, argv[3], "maxPacket", &slot) ||
      arg_u32(env, argv[4], "rcvbuf", &rcvbuf) || arg_u32(env, argv[5], "sndbuf", &sndbuf) ||
      arg_u32(env, argv[6], "offload", &offload))
    return NULL;
  if (port > 65535) return throw_code(env, "EINVAL", "port must be 0..65535", 1);
  if (batch < 1 || batch > 1024) return throw_code(env, "EINVAL", "batch must be 1..1024", 1);
  if (slot < 1 || slot > 65535) return throw_code(env, "EINVAL", "maxPacket must be 1..65535", 1);

  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  int family, dual = 0;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (!host[0] || !strcmp(host, "::")) {
    family = AF_INET6;
    dual = 1;
  } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    family = AF_INET;
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    family = AF_INET6;
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid host '%s': not an IPv4 or IPv6 address", host);
    return throw_code(env, "EINVAL", msg, 0);
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && dual && errno == EAFNOSUPPORT) {  // no IPv6 here: IPv4 only
    family = AF_INET;
    dual = 0;
    fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) return throw_errno(env, errno, "create UDP socket");
  if (family == AF_INET6) {
    int v6only = dual ? 0 : 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *s6;
  } else {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    sslen = sizeof *s4;
  }
  // Large buffers absorb bursts between event-loop turns; FORCE (root) may exceed the sysctl limits.
  int v = (int)rcvbuf;
  if (v && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  v = (int)sndbuf;
  if (v && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
    int err = errno;
    close(fd);
    char what[128];
    snprintf(what, sizeof what, "bind UDP socket to [%s]:%u", host[0] ? host : "::", port);
    return throw_errno(env, err, what);
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  uint16_t bport =
      ntohs(family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port : ((struct sockaddr_in6 *)&bound)->sin6_port);
  // GSO needs a kernel that knows UDP_SEGMENT (4.18+): probe with a zero size (= off).
  int gso = 0, gro = 0, zero = 0, one = 1;
  if ((offload & 1) && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0) gso = 1;
  if ((offload & 2) && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0) gro = 1;
  if (gro) slot = GRO_SLOT;

  udp_t *u = calloc(1, sizeof *u);
  if (u) {
    u->rmsgs = calloc(batch, sizeof *u->rmsgs);
    u->smsgs = calloc(batch, sizeof *u->smsgs);
    u->riov = calloc(batch, sizeof *u->riov);
    u->siov = calloc(batch, sizeof *u->siov);
    u->rnames = calloc(batch, sizeof *u->rnames);
    u->snames = calloc(batch, sizeof *u->snames);
    u->rctrl = calloc(batch, RCTRL);
    u->sctrl = calloc(batch, SCTRL);
    u->spk = calloc(batch, sizeof *u->spk);
    u->sbytes = calloc(batch, sizeof *u->sbytes);
  }
  if (!u || !u->rmsgs || !u->smsgs || !u->riov || !u->siov || !u->rnames || !u->snames || !u->rctrl ||
      !u->sctrl || !u->spk || !u->sbytes) {
    close(fd);
    if (u) udp_free(u);
    return throw_errno(env, ENOMEM, "allocate UDP socket");
  }
  u->env = env;
  poller_setup(&u->poller, env, u, udp_free);
  u->fd = fd;
  u->family = family;
  u->port = bport;
  u->batch = batch;
  u->slot = slot;
  u->gso = gso;
  u->gro = gro;
  u->gso_limit = 65535;

  napi_value self, jbuf, jab, jval, resource_name;
  NAPI_CALL(env, napi_create_object(env, &self));
  if (napi_wrap(env, self, u, udp_finalize, NULL, NULL) != napi_ok) {
    close(fd);
    udp_free(u);
    return throw_code(env, "EFAULT", "napi_wrap failed", 0);
  }
  u->stride = ((size_t)slot + 15) & ~(size_t)15;  // slots 16-byte aligned
  // Not zero-filled: pages of the receive area are touched only when the kernel fills them.
  NAPI_CALL(env, napi_create_buffer(env, u->stride * batch, (void **)&u->buf, &jbuf));
  NAPI_CALL(env, napi_create_reference(env, jbuf, 1, &u->buf_ref));
  // one ArrayBuffer for the metadata: offsets, lengths (u32), addrs (16 B), ports (u16), families (u8)
  uint8_t *meta;
  size_t mlen = (size_t)batch * (4 + 4 + 16 + 2 + 1);
  NAPI_CALL(env, napi_create_arraybuffer(env, mlen, (void **)&meta, &jab));
  u->offsets = (uint32_t *)meta;
  u->lengths = (uint32_t *)(meta + 4 * batch);
  u->addrs = meta + 8 * batch;
  u->ports = (uint16_t *)(meta + 24 * batch);
  u->families = meta + 26 * batch;
  NAPI_CALL(env, typed(env, jab, napi_uint32_array, batch, 0, &u->off_ref));
  NAPI_CALL(env, typed(env, jab, napi_uint32_array, batch, 4 * batch, &u->len_ref));
  NAPI_CALL(env, typed(env, jab, napi_uint8_array, 16 * batch, 8 * batch, &u->addr_ref));
  NAPI_CALL(env, typed(env, jab, napi_uint16_array, batch, 24 * batch, &u->port_ref));
  NAPI_CALL(env, typed(env, jab, napi_uint8_array, batch, 26 * batch, &u->fam_ref));
  for (uint32_t i = 0; i < batch; i++) {
    u->riov[i].iov_base = u->buf + i * u->stride;
    u->riov[i].iov_len = slot;
    u->rmsgs[i].msg_hdr.msg_iov = &u->riov[i];
    u->rmsgs[i].msg_hdr.msg_iovlen = 1;
    u->rmsgs[i].msg_hdr.msg_name = &u->rnames[i];
    u->smsgs[i].msg_hdr.msg_name = &u->snames[i];
  }
  NAPI_CALL(env, napi_create_string_utf8(env, "meshward:udp", NAPI_AUTO_LENGTH, &resource_name));
  NAPI_CALL(env, napi_async_init(env, self, resource_name, &u->actx));
  NAPI_CALL(env, napi_create_uint32(env, bport, &jval));
  NAPI_CALL(env, napi_set_named_property(env, self, "port", jval));
  return self;
}

// Hands the first `count` entries to onBatch. Returns 0 when the socket was stopped or closed meanwhile.
static int udp_deliver(udp_t *u, uint32_t count) {
  napi_env env = u->env;
  napi_value argv[7];
  napi_get_reference_value(env, u->buf_ref, &argv[0]);
  napi_get_reference_value(env, u->off_ref, &argv[1]);
  napi_get_reference_value(env, u->len_ref, &argv[2]);
  napi_get_reference_value(env, u->addr_ref, &argv[3]);
  napi_get_reference_value(env, u->port_ref, &argv[4]);
  napi_get_reference_value(env, u->fam_ref, &argv[5]);
  napi_create_uint32(env, count, &argv[6]);
  return poller_deliver(&u->poller, u->actx, 7, argv) && u->fd >= 0;
}

static void udp_poll_cb(uv_poll_t *h, int status, int events) {
  udp_t *u = h->data;
  if (u->fd < 0 || !u->poller.polling) return;
  int err = status < 0 ? -status : 0, n = 0;
  if (!err) {
    for (uint32_t i = 0; i < u->batch; i++) {
      struct msghdr *m = &u->rmsgs[i].msg_hdr;
      m->msg_namelen = sizeof(struct sockaddr_in6);
      m->msg_control = u->gro ? u->rctrl + (size_t)i * RCTRL : NULL;
      m->msg_controllen = u->gro ? RCTRL : 0;
    }
    do n = recvmmsg(u->fd, u->rmsgs, u->batch, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      // Nothing to read, or an ICMP error reported on the socket: not fatal for a datagram socket.
      if (errno != EAGAIN && errno != ECONNREFUSED && errno != EHOSTUNREACH && errno != ENETUNREACH &&
          errno != EPERM)
        err = errno;
      n = 0;
    }
  }
  if (!n && !err) return;

  poller_enter(&u->poller);
  uint32_t count = 0;
  int open = 1;
  for (int i = 0; i < n && open; i++) {
    struct msghdr *m = &u->rmsgs[i].msg_hdr;
    if (m->msg_flags & MSG_TRUNC) {
      u->stats[2] += 1;
      continue;
    }
    uint32_t len = u->rmsgs[i].msg_len, seg = len;
    if (u->gro) {
      for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0 && (uint32_t)g < len) seg = (uint32_t)g;
        }
      }
    }
    uint8_t a[16] = {0}, fam;
    uint16_t port;
    const struct sockaddr_in6 *n6 = &u->rnames[i];
    if (n6->sin6_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&n6->sin6_addr)) {
      memcpy(a, &n6->sin6_addr, 16);
      port = ntohs(n6->sin6_port);
      fam = 6;
    } else if (n6->sin6_family == AF_INET6) {
      memcpy(a, (const uint8_t *)&n6->sin6_addr + 12, 4);
      port = ntohs(n6->sin6_port);
      fam = 4;
    } else {
      const struct sockaddr_in *n4 = (const struct sockaddr_in *)n6;
      memcpy(a, &n4->sin_addr, 4);
      port = ntohs(n4->sin_port);
      fam = 4;
    }
    if (seg < len) u->stats[6] += 1;
    uint32_t base = (uint32_t)((uint8_t *)u->riov[i].iov_base - u->buf), off = 0;
    do {  // one entry per datagram; a coalesced (GRO) message holds several of `seg` bytes (the last may be shorter)
      if (count == u->batch) {
        if (!(open = udp_deliver(u, count))) break;
        count = 0;
      }
      uint32_t l = len - off < seg ? len - off : seg;
      u->offsets[count] = base + off;
      u->lengths[count] = l;
      memcpy(u->addrs + 16 * (size_t)count, a, 16);
      u->ports[count] = port;
      u->families[count] = fam;
      u->stats[0] += 1;
      u->stats[1] += l;
      count++;
      off += seg;
    } while (off < len);
  }
  if (open && count) open = udp_deliver(u, count);
  if (err && open) poller_fail(&u->poller, u->actx, err, "receive on UDP socket");
  poller_leave(&u->poller);  // may free u
}

static napi_value udp_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], on_batch, on_error;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 0);
  if (!u || arg_func_opt(env, argv[1], "onBatch", &on_batch) || arg_func_opt(env, argv[2], "onError", &on_error))
    return NULL;
  if (!on_batch) return throw_code(env, "EINVAL", "onBatch must be a function", 0);
  poller_start(&u->poller, u->fd, argv[0], on_batch, on_error, udp_poll_cb, "watch UDP socket");
  return NULL;
}

static napi_value udp_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 1);
  if (u) poller_stop(&u->poller);
  return NULL;
}

// Fills the destination of send slot j from (family, addr, port); 0 if the socket cannot reach it.
static int set_dest(udp_t *u, uint32_t j, uint8_t fam, const uint8_t *a, uint16_t port) {
  struct msghdr *m = &u->smsgs[j].msg_hdr;
  struct sockaddr_in6 *d6 = &u->snames[j];
  if (u->family == AF_INET) {
    if (fam != 4) return 0;
    struct sockaddr_in *d4 = (struct sockaddr_in *)d6;
    d4->sin_family = AF_INET;
    d4->sin_port = htons(port);
    memcpy(&d4->sin_addr, a, 4);
    m->msg_namelen = sizeof *d4;
    return 1;
  }
  memset(d6, 0, sizeof *d6);
  d6->sin6_family = AF_INET6;
  d6->sin6_port = htons(port);
  if (fam == 6) {
    memcpy(&d6->sin6_addr, a, 16);
  } else if (fam == 4) {  // v4-mapped, for the dual-stack socket
    d6->sin6_addr.s6_addr[10] = 0xff;
    d6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&d6->sin6_addr.s6_addr[12], a, 4);
  } else {
    return 0;
  }
  m->msg_namelen = sizeof *d6;
  return 1;
}

static int same_dest(const uint8_t *fams, const uint8_t *addrs, const uint16_t *ports, uint32_t i, uint32_t q) {
  return fams[q] == fams[i] && ports[q] == ports[i] &&
         !memcmp(addrs + 16 * (size_t)q, addrs + 16 * (size_t)i, fams[i] == 4 ? 4 : 16);
}

// udpSendBatch(h, buf, offsets, lengths, addrs, ports, families, count) -> consumed
static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 0);
  uint8_t *buf, *addrs, *fams;
  uint32_t *offs, *lens, count;
  uint16_t *ports;
  size_t blen, olen, llen, alen, plen, flen;
  if (!u || arg_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &blen) ||
      arg_typed(env, argv[2], napi_uint32_array, "offsets", (void **)&offs, &olen) ||
      arg_typed(env, argv[3], napi_uint32_array, "lengths", (void **)&lens, &llen) ||
      arg_typed(env, argv[4], napi_uint8_array, "addrs", (void **)&addrs, &alen) ||
      arg_typed(env, argv[5], napi_uint16_array, "ports", (void **)&ports, &plen) ||
      arg_typed(env, argv[6], napi_uint8_array, "families", (void **)&fams, &flen) ||
      arg_u32(env, argv[7], "count", &count))
    return NULL;
  if (count > olen || count > llen || count > plen || count > flen || (uint64_t)count * 16 > alen)
    return throw_code(env, "EINVAL", "count exceeds offsets/lengths/addrs/ports/families", 1);
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_code(env, "EINVAL", "datagram extends beyond buf", 1);

  uint32_t done = 0, nogso_until = 0;
  while (done < count) {
    // Prepare up to `batch` datagrams as messages, stopping before one the socket cannot address. With GSO,
    // a run of datagrams to one destination, all of one size but the last (which may be shorter), is one message.
    uint32_t m = 0, p = 0;
    while (done + p < count && p < u->batch) {
      uint32_t i = done + p;
      if (!set_dest(u, m, fams[i], addrs + 16 * (size_t)i, ports[i])) break;
      struct msghdr *h = &u->smsgs[m].msg_hdr;
      h->msg_iov = &u->siov[p];
      u->siov[p].iov_base = buf + offs[i];
      u->siov[p].iov_len = lens[i];
      uint32_t k = 1, seg = lens[i];
      size_t total = lens[i];
      if (u->gso && i >= nogso_until && seg > 0 && seg <= u->gso_limit) {
        while (done + p + k < count && p + k < u->batch && k < GSO_MAX_SEGMENTS) {
          uint32_t q = i + k;
          if (lens[q] > seg || lens[q] == 0 || total + lens[q] > GSO_MAX_BYTES || !same_dest(fams, addrs, ports, i, q))
            break;
          u->siov[p + k].iov_base = buf + offs[q];
          u->siov[p + k].iov_len = lens[q];
          total += lens[q];
          k++;
          if (lens[q] < seg) break;  // a shorter datagram ends the run
        }
      }
      h->msg_iovlen = k;
      if (k > 1) {
        h->msg_control = u->sctrl + (size_t)m * SCTRL;
        h->msg_controllen = SCTRL;
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gs, sizeof gs);
      } else {
        h->msg_control = NULL;
        h->msg_controllen = 0;
      }
      u->spk[m] = k;
      u->sbytes[m] = total;
      m++;
      p += k;
    }
    if (m == 0) {  // family mismatch (IPv6 on an IPv4 socket) or not 4/6: drop
      u->stats[5] += 1;
      done++;
      continue;
    }
    int n;
    do n = sendmmsg(u->fd, u->smsgs, m, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == ENOBUFS) break;
      if (errno == EBADF) return throw_errno(env, errno, "send on UDP socket");
      if (u->spk[0] > 1) {
        // The kernel refused the GSO message (EIO: no checksum offload on the route, so never again;
        // EINVAL: segment larger than the path MTU, so not at this size again): send these one by one.
        if (errno == EIO) u->gso = 0;
        if (errno == EINVAL) {
          uint32_t seg = (uint32_t)u->siov[0].iov_len;
          if (seg - 1 < u->gso_limit) u->gso_limit = seg - 1;
        }
        nogso_until = done + u->spk[0];
        continue;
      }
      u->stats[5] += 1;  // this first datagram was refused (unreachable, too big, ...): drop it
      done++;
      continue;
    }
    for (int k = 0; k < n; k++) {
      if (u->spk[k] > 1) u->stats[7] += 1;
      u->stats[3] += u->spk[k];
      u->stats[4] += (double)u->sbytes[k];
      done += u->spk[k];
    }
  }
  NAPI_CALL(env, napi_create_uint32(env, done, &out));
  return out;
}

// udpOffload(h) -> bit 0: GSO in use, bit 1: GRO in use
static napi_value udp_offload(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 1);
  if (!u) return NULL;
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)(u->gso | (u->gro << 1)), &out));
  return out;
}

static napi_value udp_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 1);
  double *out;
  size_t n;
  if (!u || arg_typed(env, argv[1], napi_float64_array, "out", (void **)&out, &n)) return NULL;
  for (size_t i = 0; i < 8 && i < n; i++) out[i] = u->stats[i];
  return NULL;
}

// udpSetMark(h, mark): SO_MARK on the socket, so that policy routing can send the tunnel's own packets
// around the tunnel (the agent's routing table would otherwise loop them back in). Needs CAP_NET_ADMIN.
static napi_value udp_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 0);
  uint32_t mark;
  if (!u || arg_u32(env, argv[1], "mark", &mark)) return NULL;
  if (setsockopt(u->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) return throw_errno(env, errno, "setsockopt SO_MARK");
  return NULL;
}

static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = get_udp(env, argv[0], 1);
  if (u) udp_do_close(u);
  return NULL;
}

napi_status udp_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"udpBind", NULL, udp_bind, NULL, NULL, NULL, napi_default, NULL},
      {"udpStart", NULL, udp_start, NULL, NULL, NULL, napi_default, NULL},
      {"udpStop", NULL, udp_stop, NULL, NULL, NULL, napi_default, NULL},
      {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"udpOffload", NULL, udp_offload, NULL, NULL, NULL, napi_default, NULL},
      {"udpStats", NULL, udp_stats, NULL, NULL, NULL, napi_default, NULL},
      {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_default, NULL},
      {"udpSetMark", NULL, udp_set_mark, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
