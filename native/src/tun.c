// TUN device: open (IFF_TUN | IFF_NO_PI, non-blocking), configure (ioctl, rtnetlink), read batches on
// the event loop with uv_poll, write batches. Memory handed to JS is allocated once per device.
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"
#include "offload.h"
#include "poller.h"

#define TUN_MAX_PACKET 65535
#define TUN_SLOT 2048  // buffer bytes per batch slot; plus one maximal packet so a read is never truncated

typedef struct {
  napi_env env;
  int fd;  // -1 once closed
  int ifindex;
  char name[IFNAMSIZ];
  uint32_t batch;
  size_t buf_size;
  uint8_t *buf;  // backing stores of the JS objects below
  uint32_t *offsets;
  uint32_t *lengths;
  napi_ref buf_ref, off_ref, len_ref;
  napi_async_context actx;
  poller_t poller;
  // offload mode (IFF_VNET_HDR + TSO/checksum offload): a TCP super-packet being cut into segments
  int vnet, offload;
  uint8_t *scratch;
  tso_t pend;
  uint32_t pend_off;
  int pending;
  int wgro;         // coalesce written TCP segments (offload on, and the kernel has not refused one)
  uint8_t *wbuf;    // the super-packet being written
  double stats[8];  // rxPackets, rxBytes, txPackets, txBytes, txDropped, rxSuper, rxDropped, txSuper
} tun_t;

static void tun_free(void *p) {
  tun_t *t = p;
  free(t->scratch);
  free(t->wbuf);
  free(t);
}

static void tun_do_close(tun_t *t) {
  if (t->fd < 0) return;
  poller_close(&t->poller);
  close(t->fd);  // a non-persistent TUN disappears with its last file descriptor
  t->fd = -1;
}

static void tun_finalize(napi_env env, void *data, void *hint) {
  tun_t *t = data;
  tun_do_close(t);
  drop_ref(env, &t->buf_ref);
  drop_ref(env, &t->off_ref);
  drop_ref(env, &t->len_ref);
  if (t->actx) napi_async_destroy(env, t->actx);
  t->actx = NULL;
  poller_finalized(&t->poller);
}

// Unwraps argv[0]; throws EBADF when the device is closed (unless allow_closed).
static tun_t *get_tun(napi_env env, napi_value v, int allow_closed) {
  tun_t *t = NULL;
  if (napi_unwrap(env, v, (void **)&t) != napi_ok || !t) {
    throw_code(env, "EINVAL", "not a TUN device handle", 0);
    return NULL;
  }
  if (!allow_closed && t->fd < 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "TUN device %s is closed", t->name);
    napi_throw(env, make_errno_error(env, EBADF, msg));
    return NULL;
  }
  return t;
}

static int ctl_ioctl(tun_t *t, unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  memcpy(ifr->ifr_name, t->name, IFNAMSIZ);
  int err = ioctl(s, req, ifr) < 0 ? errno : 0;
  close(s);
  return err;
}

// tunOpen(name, batch, offload) -> handle { name, offload }
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ];
  uint32_t batch;
  int want_offload;
  if (arg_string(env, argv[0], "TUN device name", name, sizeof name) ||
      arg_u32(env, argv[1], "batch", &batch) || arg_bool(env, argv[2], "offload", &want_offload))
    return NULL;
  if (batch < 1 || batch > 1024) return throw_code(env, "EINVAL", "batch must be 1..1024", 1);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (want_offload ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    char what[96];
    snprintf(what, sizeof what, "create TUN device '%s' (TUNSETIFF)", name);
    return throw_errno(env, err, what);
  }
  int offload = 0;
  if (want_offload) {
    int hsz = sizeof(struct virtio_net_hdr);
    unsigned int feat = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hsz) == 0 && ioctl(fd, TUNSETOFFLOAD, feat) == 0) offload = 1;
  }

  tun_t *t = calloc(1, sizeof *t);
  if (t && want_offload) {
    t->scratch = malloc(TUN_MAX_PACKET + 1);
    t->wbuf = malloc(TUN_MAX_PACKET + 1);
  }
  if (!t || (want_offload && (!t->scratch || !t->wbuf))) {
    close(fd);
    if (t) tun_free(t);
    return throw_errno(env, ENOMEM, "allocate TUN device");
  }
  t->vnet = want_offload;
  t->offload = offload;
  t->wgro = offload;
  t->env = env;
  poller_setup(&t->poller, env, t, tun_free);
  t->fd = fd;
  t->batch = batch;
  memcpy(t->name, ifr.ifr_name, IFNAMSIZ);
  t->name[IFNAMSIZ - 1] = 0;

  napi_value self, jname, jbuf, jab, joff, jlen, resource_name;
  NAPI_CALL(env, napi_create_object(env, &self));
  if (napi_wrap(env, self, t, tun_finalize, NULL, NULL) != napi_ok) {
    close(fd);
    free(t);
    return throw_code(env, "EFAULT", "napi_wrap failed", 0);
  }
  // From here on the finalizer owns t; errors below leave cleanup to it.
  struct ifreq q;
  memset(&q, 0, sizeof q);
  int err = ctl_ioctl(t, SIOCGIFINDEX, &q);
  if (err) {
    tun_do_close(t);
    return throw_errno(env, err, "get TUN interface index");
  }
  t->ifindex = q.ifr_ifindex;

  t->buf_size = (size_t)batch * TUN_SLOT + TUN_MAX_PACKET + 1;
  NAPI_CALL(env, napi_create_buffer(env, t->buf_size, (void **)&t->buf, &jbuf));
  NAPI_CALL(env, napi_create_arraybuffer(env, batch * 8, (void **)&t->offsets, &jab));
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, batch, jab, 0, &joff));
  t->lengths = t->offsets + batch;
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, batch, jab, batch * 4, &jlen));
  NAPI_CALL(env, napi_create_reference(env, jbuf, 1, &t->buf_ref));
  NAPI_CALL(env, napi_create_reference(env, joff, 1, &t->off_ref));
  NAPI_CALL(env, napi_create_reference(env, jlen, 1, &t->len_ref));
  NAPI_CALL(env, napi_create_string_utf8(env, "meshward:tun", NAPI_AUTO_LENGTH, &resource_name));
  NAPI_CALL(env, napi_async_init(env, self, resource_name, &t->actx));
  NAPI_CALL(env, napi_create_string_utf8(env, t->name, NAPI_AUTO_LENGTH, &jname));
  NAPI_CALL(env, napi_set_named_property(env, self, "name", jname));
  napi_value joff_flag;
  NAPI_CALL(env, napi_get_boolean(env, offload, &joff_flag));
  NAPI_CALL(env, napi_set_named_property(env, self, "offload", joff_flag));
  return self;
}

static napi_value tun_set_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  uint32_t mtu;
  if (!t || arg_u32(env, argv[1], "mtu", &mtu)) return NULL;
  if (mtu < 68 || mtu > TUN_MAX_PACKET) return throw_code(env, "EINVAL", "mtu must be 68..65535", 1);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_mtu = (int)mtu;
  int err = ctl_ioctl(t, SIOCSIFMTU, &ifr);
  if (err) {
    char what[96];
    snprintf(what, sizeof what, "set MTU %u on %s", mtu, t->name);
    return throw_errno(env, err, what);
  }
  return NULL;
}

static napi_value tun_get_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  if (!t) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  int err = ctl_ioctl(t, SIOCGIFMTU, &ifr);
  if (err) return throw_errno(env, err, "get MTU");
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)ifr.ifr_mtu, &out));
  return out;
}

static napi_value tun_set_up(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  int up;
  if (!t || arg_bool(env, argv[1], "up", &up)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  int err = ctl_ioctl(t, SIOCGIFFLAGS, &ifr);
  if (!err) {
    if (up)
      ifr.ifr_flags |= IFF_UP;
    else
      ifr.ifr_flags &= ~IFF_UP;
    err = ctl_ioctl(t, SIOCSIFFLAGS, &ifr);
  }
  if (err) {
    char what[96];
    snprintf(what, sizeof what, "set %s %s", t->name, up ? "up" : "down");
    return throw_errno(env, err, what);
  }
  return NULL;
}

// Shared by addAddress, addRoute and removeAddress: kind 0 = add address, 1 = add route, 2 = remove address.
static napi_value tun_add_cidr(napi_env env, napi_callback_info info, int kind) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  char cidr[80];
  if (!t || arg_string(env, argv[1], "CIDR", cidr, sizeof cidr)) return NULL;
  int family, prefix;
  uint8_t addr[16];
  const char *why;
  char msg[192];
  if (parse_cidr(cidr, &family, addr, &prefix, &why)) {
    snprintf(msg, sizeof msg, "invalid CIDR '%s': %s (expected e.g. 100.64.0.1/32 or fd7a::1/128)", cidr, why);
    return throw_code(env, "EINVAL", msg, 0);
  }
  int err;
  if (kind == 2) {
    // Removing an address the device does not have is not an error: the caller wanted it gone.
    err = nl_del_address(t->ifindex, family, addr, prefix);
    if (err && err != EADDRNOTAVAIL && err != ENOENT && err != ESRCH) {
      snprintf(msg, sizeof msg, "remove address %s from %s", cidr, t->name);
      return throw_errno(env, err, msg);
    }
    napi_value out;
    NAPI_CALL(env, napi_get_boolean(env, err == 0, &out));
    return out;
  }
  if (kind == 0) {
    err = nl_add_address(t->ifindex, family, addr, prefix);
  } else {
    int len = family == AF_INET ? 4 : 16;
    for (int bit = prefix; bit < len * 8; bit++) {
      if (addr[bit / 8] & (0x80 >> (bit % 8))) {
        snprintf(msg, sizeof msg, "invalid route '%s': address has bits set beyond the /%d prefix", cidr, prefix);
        return throw_code(env, "EINVAL", msg, 0);
      }
    }
    err = nl_add_route(t->ifindex, family, addr, prefix);
  }
  if (err) {
    snprintf(msg, sizeof msg, "%s %s %s %s", kind ? "add route" : "add address", cidr, kind ? "via" : "to",
             t->name);
    if (kind && err == ENETDOWN) strncat(msg, " (the device is down: setUp(true) first)", sizeof msg - strlen(msg) - 1);
    return throw_errno(env, err, msg);
  }
  return NULL;
}

static napi_value tun_add_address(napi_env env, napi_callback_info info) { return tun_add_cidr(env, info, 0); }
static napi_value tun_add_route(napi_env env, napi_callback_info info) { return tun_add_cidr(env, info, 1); }
static napi_value tun_remove_address(napi_env env, napi_callback_info info) { return tun_add_cidr(env, info, 2); }

// Reads one packet to `p` (room for TUN_MAX_PACKET). Returns its length, 0 when it was consumed otherwise
// (a super-packet now pending, or a malformed frame dropped), -1 at EAGAIN, -2 on error (errno set).
static ssize_t tun_read_one(tun_t *t, uint8_t *p) {
  ssize_t n;
  if (!t->vnet) {
    do n = read(t->fd, p, TUN_MAX_PACKET);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? -1 : -2;
    return n > 0 ? n : -1;
  }
  struct virtio_net_hdr vh;
  struct iovec iov[2] = {{&vh, sizeof vh}, {p, TUN_MAX_PACKET}};
  do n = readv(t->fd, iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? -1 : -2;
  if (n == 0) return -1;
  if ((size_t)n < sizeof vh) {
    t->stats[6] += 1;
    return 0;
  }
  n -= (ssize_t)sizeof vh;
  int type = vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (type == VIRTIO_NET_HDR_GSO_NONE) {
    if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && vnet_complete_csum(p, (size_t)n, vh.csum_start, vh.csum_offset)) {
      t->stats[6] += 1;
      return 0;
    }
    return n;
  }
  // A TCP super-packet: keep it aside and cut it into segments (its checksum is recomputed per segment).
  memcpy(t->scratch, p, (size_t)n);
  if ((type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6) ||
      tso_prepare(&t->pend, t->scratch, (size_t)n, type == VIRTIO_NET_HDR_GSO_TCPV6, vh.gso_size)) {
    t->stats[6] += 1;
    return 0;
  }
  t->pending = 1;
  t->pend_off = 0;
  t->stats[5] += 1;
  return 0;
}

static void tun_poll_cb(uv_poll_t *h, int status, int events) {
  tun_t *t = h->data;
  if (t->fd < 0 || !t->poller.polling) return;
  napi_env env = t->env;
  int err = status < 0 ? -status : 0, open = 1, scoped = 0;
  do {
    uint32_t count = 0;
    size_t off = 0;
    while (count < t->batch) {
      ssize_t n;
      if (t->pending) {
        if (t->buf_size - off < t->pend.hdrlen + t->pend.gso) break;
        n = (ssize_t)tso_segment(&t->pend, t->pend_off, t->buf + off);
        t->pend_off += t->pend.gso;
        if (t->pend_off >= t->pend.len - t->pend.hdrlen) t->pending = 0;
      } else {
        if (err || t->buf_size - off < TUN_MAX_PACKET) break;
        n = tun_read_one(t, t->buf + off);
        if (n == -1) break;
        if (n == -2) {
          err = errno;
          break;
        }
        if (n == 0) continue;
      }
      t->offsets[count] = (uint32_t)off;
      t->lengths[count] = (uint32_t)n;
      count++;
      t->stats[0] += 1;
      t->stats[1] += (double)n;
      off += ((size_t)n + 15) & ~(size_t)15;  // keep packets 16-byte aligned
    }
    if (!count && !err) break;
    if (!scoped) {
      poller_enter(&t->poller);
      scoped = 1;
    }
    if (count) {
      napi_value argv[4];
      napi_get_reference_value(env, t->buf_ref, &argv[0]);
      napi_get_reference_value(env, t->off_ref, &argv[1]);
      napi_get_reference_value(env, t->len_ref, &argv[2]);
      napi_create_uint32(env, count, &argv[3]);
      open = poller_deliver(&t->poller, t->actx, 4, argv) && t->fd >= 0;
    }
  } while (open && t->pending);  // the rest of a super-packet goes out in the next batch, now
  if (!scoped) return;
  if (err && open) {
    // Reading stops; the error goes to onError (or is uncaught).
    char what[64];
    snprintf(what, sizeof what, "read from TUN device %s", t->name);
    poller_fail(&t->poller, t->actx, err, what);
  }
  poller_leave(&t->poller);  // may free t
}

// tunStart(h, onBatch, onError?)
static napi_value tun_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], on_batch, on_error;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  if (!t || arg_func_opt(env, argv[1], "onBatch", &on_batch) || arg_func_opt(env, argv[2], "onError", &on_error))
    return NULL;
  if (!on_batch) return throw_code(env, "EINVAL", "onBatch must be a function", 0);
  poller_start(&t->poller, t->fd, argv[0], on_batch, on_error, tun_poll_cb, "watch TUN device");
  return NULL;
}

static napi_value tun_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 1);
  if (t) poller_stop(&t->poller);
  return NULL;
}

// Writes one packet: 1 written, 0 dropped (refused by the kernel), -1 would block, -2 device gone (errno kept).
static int tun_write_packet(tun_t *t, const uint8_t *p, size_t len) {
  static const struct virtio_net_hdr plain;  // no offload asked: checksums are complete
  for (;;) {
    ssize_t n;
    if (t->vnet) {
      struct iovec iov[2] = {{(void *)&plain, sizeof plain}, {(void *)p, len}};
      n = writev(t->fd, iov, 2);
      if (n >= (ssize_t)sizeof plain) n -= (ssize_t)sizeof plain;
    } else {
      n = write(t->fd, p, len);
    }
    if (n >= 0) {
      t->stats[2] += 1;
      t->stats[3] += (double)n;
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return -1;
    if (errno == EBADF || errno == EBADFD) return -2;
    t->stats[4] += 1;  // EINVAL (not an IP packet), EIO, EMSGSIZE, ...: drop and count
    return 0;
  }
}

#define GRO_MAX_SEGMENTS 64

// Offload mode: if the packets from `first` on start a run of TCP segments of one flow, in sequence, with
// right checksums, writes the run as one super-packet. Returns the packets written (> 1), 0 when there is
// no run (write the first packet alone), -1 would block, -2 device gone (errno kept).
static int tun_write_run(tun_t *t, const uint8_t *buf, const uint32_t *offs, const uint32_t *lens, uint32_t first,
                         uint32_t count) {
  const uint8_t *pk[GRO_MAX_SEGMENTS];
  tcp_seg_t sg[GRO_MAX_SEGMENTS];
  pk[0] = buf + offs[first];
  if (first + 1 >= count || tcp_seg_parse(pk[0], lens[first], &sg[0])) return 0;
  uint32_t n = 1;
  size_t total = lens[first];
  while (first + n < count && n < GRO_MAX_SEGMENTS) {
    const uint8_t *q = buf + offs[first + n];
    tcp_seg_t *sq = &sg[n];
    if (tcp_seg_parse(q, lens[first + n], sq) || !tcp_seg_follows(pk[0], &sg[0], pk[n - 1], &sg[n - 1], q, sq) ||
        total + sq->plen > TUN_MAX_PACKET)
      break;
    // A bad checksum is the kernel's to find and drop: never vouch for it inside a super-packet.
    if (n == 1 && !tcp_csum_ok(pk[0], &sg[0])) return 0;
    if (!tcp_csum_ok(q, sq)) break;
    pk[n++] = q;
    total += sq->plen;
  }
  if (n < 2) return 0;
  struct virtio_net_hdr vh;
  size_t len = tcp_coalesce(t->wbuf, pk, sg, n, &vh);
  struct iovec iov[2] = {{&vh, sizeof vh}, {t->wbuf, len}};
  ssize_t w;
  do w = writev(t->fd, iov, 2);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno == EAGAIN) return -1;
    if (errno == EBADF || errno == EBADFD) return -2;
    t->wgro = 0;  // the kernel refuses super-packets: write segments one by one from now on
    return 0;
  }
  t->stats[2] += n;
  for (uint32_t i = 0; i < n; i++) t->stats[3] += lens[first + i];
  t->stats[7] += 1;
  return (int)n;
}

static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  uint8_t *buf;
  uint32_t *offs, *lens, count;
  size_t blen, olen, llen;
  if (!t || arg_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &blen) ||
      arg_typed(env, argv[2], napi_uint32_array, "offsets", (void **)&offs, &olen) ||
      arg_typed(env, argv[3], napi_uint32_array, "lengths", (void **)&lens, &llen) ||
      arg_u32(env, argv[4], "count", &count))
    return NULL;
  if (count > olen || count > llen) return throw_code(env, "EINVAL", "count exceeds offsets/lengths", 1);
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_code(env, "EINVAL", "packet extends beyond buf", 1);
  uint32_t done = 0;
  while (done < count) {
    if (t->wgro) {
      int r = tun_write_run(t, buf, offs, lens, done, count);
      if (r == -1) break;
      if (r == -2) return throw_errno(env, errno, "write to TUN device");
      if (r > 0) {
        done += (uint32_t)r;
        continue;
      }
    }
    int r = tun_write_packet(t, buf + offs[done], lens[done]);
    if (r == -1) break;
    if (r == -2) return throw_errno(env, errno, "write to TUN device");
    done++;
  }
  NAPI_CALL(env, napi_create_uint32(env, done, &out));
  return out;
}

static napi_value tun_write_one(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 0);
  uint8_t *buf;
  size_t blen;
  uint32_t off, len;
  if (!t || arg_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &blen) ||
      arg_u32(env, argv[2], "offset", &off) || arg_u32(env, argv[3], "length", &len))
    return NULL;
  if ((uint64_t)off + len > blen) return throw_code(env, "EINVAL", "packet extends beyond buf", 1);
  int r = tun_write_packet(t, buf + off, len);
  if (r == -2) return throw_errno(env, errno, "write to TUN device");
  NAPI_CALL(env, napi_get_boolean(env, r == 1, &out));
  return out;
}

static napi_value tun_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 1);
  double *out;
  size_t n;
  if (!t || arg_typed(env, argv[1], napi_float64_array, "out", (void **)&out, &n)) return NULL;
  for (size_t i = 0; i < 8 && i < n; i++) out[i] = t->stats[i];
  return NULL;
}

static napi_value tun_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_tun(env, argv[0], 1);
  if (t) tun_do_close(t);
  return NULL;
}

napi_status tun_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"tunSetMtu", NULL, tun_set_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"tunGetMtu", NULL, tun_get_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"tunSetUp", NULL, tun_set_up, NULL, NULL, NULL, napi_default, NULL},
      {"tunAddAddress", NULL, tun_add_address, NULL, NULL, NULL, napi_default, NULL},
      {"tunAddRoute", NULL, tun_add_route, NULL, NULL, NULL, napi_default, NULL},
      {"tunRemoveAddress", NULL, tun_remove_address, NULL, NULL, NULL, napi_default, NULL},
      {"tunStart", NULL, tun_start, NULL, NULL, NULL, napi_default, NULL},
      {"tunStop", NULL, tun_stop, NULL, NULL, NULL, napi_default, NULL},
      {"tunWrite", NULL, tun_write, NULL, NULL, NULL, napi_default, NULL},
      {"tunWriteOne", NULL, tun_write_one, NULL, NULL, NULL, napi_default, NULL},
      {"tunStats", NULL, tun_stats, NULL, NULL, NULL, napi_default, NULL},
      {"tunClose", NULL, tun_close, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
