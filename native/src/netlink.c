// rtnetlink requests (add and remove address, add route) and CIDR parsing. Configuration only, not on a hot path.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

int parse_cidr(const char *s, int *family, uint8_t *addr, int *prefix, const char **why) {
  char host[64];
  const char *slash = strchr(s, '/');
  if (!slash) {
    *why = "missing /prefix length";
    return -1;
  }
  size_t hl = (size_t)(slash - s);
  if (hl == 0 || hl >= sizeof host) {
    *why = "bad address";
    return -1;
  }
  memcpy(host, s, hl);
  host[hl] = 0;
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, host, addr) == 1)
    *family = AF_INET;
  else if (inet_pton(AF_INET6, host, addr) == 1)
    *family = AF_INET6;
  else {
    *why = "not an IPv4 or IPv6 address";
    return -1;
  }
  const char *p = slash + 1;
  int max = *family == AF_INET ? 32 : 128, n = 0;
  if (!*p || strlen(p) > 3) {
    *why = "bad prefix length";
    return -1;
  }
  for (; *p; p++) {
    if (*p < '0' || *p > '9') {
      *why = "bad prefix length";
      return -1;
    }
    n = n * 10 + (*p - '0');
  }
  if (n > max) {
    *why = *family == AF_INET ? "prefix length above 32" : "prefix length above 128";
    return -1;
  }
  *prefix = n;
  return 0;
}

static void add_attr(struct nlmsghdr *h, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

// Sends one request and waits for its acknowledgement; returns 0 or the kernel's errno.
static int nl_talk(struct nlmsghdr *req) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  static uint32_t seq;
  req->nlmsg_seq = ++seq;
  req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  int err = 0;
  if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    err = errno;
    goto out;
  }
  for (;;) {
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      goto out;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != req->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        err = -e->error;
        goto out;
      }
    }
  }
out:
  close(fd);
  return err;
}

// RTM_NEWADDR (add) or RTM_DELADDR (remove) of addr/prefix on the device.
static int nl_address(int type, int ifindex, int family, const void *addr, int prefix) {
  union {
    struct nlmsghdr h;
    char buf[256];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  req.h.nlmsg_type = (unsigned short)type;
  if (type == RTM_NEWADDR) req.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;  // idempotent, like `ip addr replace`
  struct ifaddrmsg *ifa = NLMSG_DATA(&req.h);
  ifa->ifa_family = (unsigned char)family;
  ifa->ifa_prefixlen = (unsigned char)prefix;
  ifa->ifa_index = (unsigned)ifindex;
  // No duplicate address detection on a TUN: the address would be unusable ("tentative") for a while.
  if (family == AF_INET6 && type == RTM_NEWADDR) ifa->ifa_flags = IFA_F_NODAD;
  size_t alen = family == AF_INET ? 4 : 16;
  add_attr(&req.h, IFA_LOCAL, addr, alen);
  add_attr(&req.h, IFA_ADDRESS, addr, alen);
  return nl_talk(&req.h);
}

int nl_add_address(int ifindex, int family, const void *addr, int prefix) {
  return nl_address(RTM_NEWADDR, ifindex, family, addr, prefix);
}

int nl_del_address(int ifindex, int family, const void *addr, int prefix) {
  return nl_address(RTM_DELADDR, ifindex, family, addr, prefix);
}

int nl_add_route(int ifindex, int family, const void *dst, int prefix) {
  union {
    struct nlmsghdr h;
    char buf[256];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  req.h.nlmsg_type = RTM_NEWROUTE;
  req.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;  // idempotent, like `ip route replace`
  struct rtmsg *rt = NLMSG_DATA(&req.h);
  rt->rtm_family = (unsigned char)family;
  rt->rtm_dst_len = (unsigned char)prefix;
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_LINK;
  rt->rtm_type = RTN_UNICAST;
  if (prefix > 0) add_attr(&req.h, RTA_DST, dst, family == AF_INET ? 4 : 16);
  uint32_t oif = (uint32_t)ifindex;
  add_attr(&req.h, RTA_OIF, &oif, sizeof oif);
  return nl_talk(&req.h);
}
