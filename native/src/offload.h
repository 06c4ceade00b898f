#ifndef MESHWARD_OFFLOAD_H
#define MESHWARD_OFFLOAD_H
#include <stddef.h>
#include <stdint.h>

// Finishes a checksum the kernel left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM). 0, or -1 when out of range.
int vnet_complete_csum(uint8_t *pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

typedef struct {
  const uint8_t *pkt;
  size_t len;
  uint32_t iph, hdrlen, gso;
  int v6;
} tso_t;

// Checks a TCP super-packet (IPv4, or IPv6 without extension headers). 0, or -1 if malformed.
int tso_prepare(tso_t *s, uint8_t *pkt, size_t len, int v6, uint16_t gso_size);
// Writes the segment whose payload starts at poff (a multiple of gso) to out; returns its length.
size_t tso_segment(const tso_t *s, uint32_t poff, uint8_t *out);

// Writing: a TCP segment that may be merged with others (ACK, maybe PSH, with payload, not a fragment).
typedef struct {
  int v6, psh;
  uint32_t iph, hdrlen, plen, seq;
} tcp_seg_t;

// 0 when p is such a segment (and fills s), -1 otherwise.
int tcp_seg_parse(const uint8_t *p, size_t len, tcp_seg_t *s);
// 1 when the TCP checksum of the segment is right.
int tcp_csum_ok(const uint8_t *p, const tcp_seg_t *s);
// 1 when q continues the run that starts with a and ends (so far) with prev: same flow and headers, next in sequence.
int tcp_seg_follows(const uint8_t *a, const tcp_seg_t *sa, const uint8_t *prev, const tcp_seg_t *sp, const uint8_t *q,
                    const tcp_seg_t *sq);
// Writes the n segments as one super-packet to out and fills vh for it; returns its length.
struct virtio_net_hdr;
size_t tcp_coalesce(uint8_t *out, const uint8_t *const *pkts, const tcp_seg_t *segs, uint32_t n,
                    struct virtio_net_hdr *vh);
#endif
