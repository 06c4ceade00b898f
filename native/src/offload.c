// TUN offloads (IFF_VNET_HDR): finishing checksums the kernel left partial, and cutting a TCP
// super-packet (TSO, up to 64 KiB) into MTU-sized segments, each with its own headers and checksums,
// so that JS only ever sees ordinary IP packets.
#include <linux/virtio_net.h>
#include <string.h>

#include "offload.h"

// One's-complement sum in native byte order (RFC 1071: the folded result is byte-order independent).
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    sum += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    sum += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t w = 0;
    memcpy(&w, p, 1);  // the odd last byte is the high byte of a zero-padded word
    sum += w;
  }
  return sum;
}

static uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static void put_csum(uint8_t *field, uint64_t sum) {
  uint16_t c = (uint16_t)~csum_fold(sum);
  memcpy(field, &c, 2);
}

int vnet_complete_csum(uint8_t *pkt, size_t len, uint16_t start, uint16_t offset) {
  if ((size_t)start + offset + 2 > len) return -1;
  // The field already holds the pseudo-header sum; sum everything from start, field included.
  uint8_t *field = pkt + start + offset;
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, pkt + start, len - start));
  if (offset == 6 && c == 0) c = 0xffff;  // UDP: 0 would mean "no checksum"
  memcpy(field, &c, 2);
  return 0;
}

int tso_prepare(tso_t *s, uint8_t *pkt, size_t len, int v6, uint16_t gso) {
  size_t iph;
  if (!v6) {
    if (len < 20 || pkt[0] >> 4 != 4 || pkt[9] != 6) return -1;
    iph = (size_t)(pkt[0] & 15) * 4;
    if (iph < 20) return -1;
  } else {
    if (len < 40 || pkt[0] >> 4 != 6 || pkt[6] != 6) return -1;  // TCP right after the fixed header
    iph = 40;
  }
  if (len < iph + 20) return -1;
  size_t th = (size_t)(pkt[iph + 12] >> 4) * 4;
  if (th < 20 || len <= iph + th || gso == 0) return -1;  // a super-packet carries payload
  s->pkt = pkt;
  s->len = len;
  s->iph = (uint32_t)iph;
  s->hdrlen = (uint32_t)(iph + th);
  s->gso = gso;
  s->v6 = v6;
  return 0;
}

size_t tso_segment(const tso_t *s, uint32_t poff, uint8_t *out) {
  const uint8_t *pkt = s->pkt;
  uint32_t payload = (uint32_t)s->len - s->hdrlen;
  uint32_t plen = payload - poff < s->gso ? payload - poff : s->gso;
  uint32_t k = poff / s->gso;
  int last = poff + plen >= payload;
  memcpy(out, pkt, s->hdrlen);
  memcpy(out + s->hdrlen, pkt + s->hdrlen + poff, plen);
  uint8_t *tcp = out + s->iph;
  uint32_t tcplen = s->hdrlen - s->iph + plen;
  uint64_t sum;
  if (!s->v6) {
    uint32_t tot = s->hdrlen + plen;
    out[2] = (uint8_t)(tot >> 8);
    out[3] = (uint8_t)tot;
    uint16_t id = (uint16_t)(((pkt[4] << 8) | pkt[5]) + k);
    out[4] = (uint8_t)(id >> 8);
    out[5] = (uint8_t)id;
    out[10] = out[11] = 0;
    put_csum(out + 10, csum_add(0, out, s->iph));
    uint8_t ph[4] = {0, 6, (uint8_t)(tcplen >> 8), (uint8_t)tcplen};
    sum = csum_add(csum_add(0, out + 12, 8), ph, 4);
  } else {
    out[4] = (uint8_t)(tcplen >> 8);
    out[5] = (uint8_t)tcplen;
    uint8_t ph[8] = {(uint8_t)(tcplen >> 24), (uint8_t)(tcplen >> 16), (uint8_t)(tcplen >> 8), (uint8_t)tcplen,
                     0, 0, 0, 6};
    sum = csum_add(csum_add(0, out + 8, 32), ph, 8);
  }
  uint32_t seq = ((uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7]) + poff;
  tcp[4] = (uint8_t)(seq >> 24);
  tcp[5] = (uint8_t)(seq >> 16);
  tcp[6] = (uint8_t)(seq >> 8);
  tcp[7] = (uint8_t)seq;
  if (!last) tcp[13] &= (uint8_t)~0x09;  // FIN and PSH only on the last segment
  if (k > 0) tcp[13] &= (uint8_t)~0x80;  // CWR only on the first
  tcp[16] = tcp[17] = 0;
  put_csum(tcp + 16, csum_add(sum, tcp, tcplen));
  return s->hdrlen + plen;
}

// ---- writing: coalescing TCP segments of one flow into a super-packet (GRO) ----

int tcp_seg_parse(const uint8_t *p, size_t len, tcp_seg_t *s) {
  if (len < 20) return -1;
  if (p[0] >> 4 == 4) {
    uint32_t iph = (uint32_t)(p[0] & 15) * 4;
    if (iph < 20 || p[9] != 6 || (size_t)((p[2] << 8) | p[3]) != len) return -1;
    if (((p[6] << 8) | p[7]) & 0x3fff) return -1;  // a fragment
    s->v6 = 0;
    s->iph = iph;
  } else if (p[0] >> 4 == 6) {
    if (len < 40 || p[6] != 6 || (size_t)((p[4] << 8) | p[5]) + 40 != len) return -1;
    s->v6 = 1;
    s->iph = 40;
  } else {
    return -1;
  }
  if (len < s->iph + 20) return -1;
  const uint8_t *tcp = p + s->iph;
  uint32_t thl = (uint32_t)(tcp[12] >> 4) * 4;
  if (thl < 20 || len < s->iph + thl) return -1;
  uint8_t flags = tcp[13];
  if (!(flags & 0x10) || (flags & ~0x18)) return -1;  // ACK, maybe PSH; nothing else
  s->hdrlen = s->iph + thl;
  s->plen = (uint32_t)len - s->hdrlen;
  if (s->plen == 0) return -1;
  s->seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
  s->psh = (flags & 0x08) != 0;
  return 0;
}

static uint64_t pseudo_sum(const uint8_t *p, int v6, uint32_t tcplen) {
  if (!v6) {
    uint8_t ph[4] = {0, 6, (uint8_t)(tcplen >> 8), (uint8_t)tcplen};
    return csum_add(csum_add(0, p + 12, 8), ph, 4);
  }
  uint8_t ph[8] = {(uint8_t)(tcplen >> 24), (uint8_t)(tcplen >> 16), (uint8_t)(tcplen >> 8), (uint8_t)tcplen, 0, 0, 0, 6};
  return csum_add(csum_add(0, p + 8, 32), ph, 8);
}

int tcp_csum_ok(const uint8_t *p, const tcp_seg_t *s) {
  uint32_t tcplen = s->hdrlen - s->iph + s->plen;
  return csum_fold(csum_add(pseudo_sum(p, s->v6, tcplen), p + s->iph, tcplen)) == 0xffff;
}

int tcp_seg_follows(const uint8_t *a, const tcp_seg_t *sa, const uint8_t *prev, const tcp_seg_t *sp, const uint8_t *q,
                    const tcp_seg_t *sq) {
  if (sq->v6 != sa->v6 || sq->hdrlen != sa->hdrlen || sq->iph != sa->iph) return 0;
  if (sp->psh || sp->plen != sa->plen || sq->plen > sa->plen) return 0;  // all full-sized but the last
  if (sq->seq != sp->seq + sp->plen) return 0;
  if (!sa->v6) {
    // version/IHL/TOS, flags (DF), TTL, protocol, addresses and any IP options must match
    if (memcmp(a, q, 2) || a[6] != q[6] || (a[7] != q[7]) || memcmp(a + 8, q + 8, 2) || memcmp(a + 12, q + 12, sa->iph - 12))
      return 0;
  } else {
    if (memcmp(a, q, 4) || memcmp(a + 6, q + 6, 34)) return 0;  // traffic class, flow label, hop limit, addresses
  }
  const uint8_t *ta = a + sa->iph, *tq = q + sq->iph;
  // ports, ack, header length, window, urgent pointer, options; flags may differ only in PSH
  if (memcmp(ta, tq, 4) || memcmp(ta + 8, tq + 8, 5) || ((ta[13] ^ tq[13]) & ~0x08) || memcmp(ta + 14, tq + 14, 2) ||
      memcmp(ta + 18, tq + 18, sa->hdrlen - sa->iph - 18))
    return 0;
  return 1;
}

size_t tcp_coalesce(uint8_t *out, const uint8_t *const *pkts, const tcp_seg_t *segs, uint32_t n,
                    struct virtio_net_hdr *vh) {
  const tcp_seg_t *s = &segs[0];
  memcpy(out, pkts[0], s->hdrlen);
  size_t off = s->hdrlen;
  for (uint32_t i = 0; i < n; i++) {
    memcpy(out + off, pkts[i] + segs[i].hdrlen, segs[i].plen);
    off += segs[i].plen;
  }
  uint32_t tcplen = (uint32_t)off - s->iph;
  if (!s->v6) {
    out[2] = (uint8_t)(off >> 8);
    out[3] = (uint8_t)off;
    out[10] = out[11] = 0;
    put_csum(out + 10, csum_add(0, out, s->iph));
  } else {
    out[4] = (uint8_t)((off - 40) >> 8);
    out[5] = (uint8_t)(off - 40);
  }
  uint8_t *tcp = out + s->iph;
  if (segs[n - 1].psh) tcp[13] |= 0x08;
  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel completes it if it ever needs to
  uint16_t ps = csum_fold(pseudo_sum(out, s->v6, tcplen));
  memcpy(tcp + 16, &ps, 2);
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->gso_type = s->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  vh->hdr_len = (uint16_t)s->hdrlen;
  vh->gso_size = (uint16_t)s->plen;
  vh->csum_start = (uint16_t)s->iph;
  vh->csum_offset = 16;
  return off;
}
