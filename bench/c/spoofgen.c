/*
 * Flood of UDP datagrams from forged IPv4 source addresses, for bench/relay-flood.ts: a raw socket
 * (socket(AF_INET, SOCK_RAW, IPPROTO_RAW), which implies IP_HDRINCL, raw(7)) writes the IPv4 header itself, so
 * every datagram can come from another address. Sent with sendmmsg(2) in batches of 64, paced to --rate.
 *
 *   spoofgen --dst IP:PORT --src FIRST_IP --sources N --rate PPS --duration S < PAYLOAD_HEX
 *
 * Datagram i comes from FIRST_IP + (i mod N), source port 1024 + (i mod 60000), and carries the payload (hex on
 * stdin, e.g. an ALLOCATE request). The kernel fills in the IP checksum and total length; the UDP checksum is 0
 * ("none", RFC 768). Needs CAP_NET_RAW. Prints one JSON line: {"sent":N,"seconds":S,"rate":R,"short":K}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define BATCH 64
#define MAXPAYLOAD 1400

static void usage(void) {
  fprintf(stderr, "usage: spoofgen --dst IP:PORT --src FIRST_IP --sources N --rate PPS --duration S < PAYLOAD_HEX\n");
  exit(2);
}

int main(int argc, char **argv) {
  struct in_addr dst = {0}, src = {0};
  int dport = 0, sources = 1000;
  double rate = 40000, duration = 5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--dst")) {
      char ip[64];
      if (sscanf(v, "%63[^:]:%d", ip, &dport) != 2 || !inet_aton(ip, &dst)) usage();
    } else if (!strcmp(a, "--src")) {
      if (!inet_aton(v, &src)) usage();
    } else if (!strcmp(a, "--sources")) sources = atoi(v);
    else if (!strcmp(a, "--rate")) rate = atof(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else usage();
    i++;
  }
  if (!dport || !src.s_addr || sources < 1 || rate <= 0 || duration <= 0) usage();

  unsigned char payload[MAXPAYLOAD];
  int plen = 0;
  for (int c, hi = -1; (c = getchar()) != EOF;) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) continue;
    if (hi < 0) hi = d;
    else {
      if (plen == MAXPAYLOAD) usage();
      payload[plen++] = (unsigned char)(hi << 4 | d);
      hi = -1;
    }
  }

  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)"); return 1; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

  static unsigned char pkts[BATCH][28 + MAXPAYLOAD];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = dst };
  int len = 28 + plen;
  for (int b = 0; b < BATCH; b++) {
    unsigned char *p = pkts[b];
    memset(p, 0, 28);
    p[0] = 0x45; /* IPv4, 5 words of header */
    p[2] = len >> 8; p[3] = len & 255;
    p[8] = 64;   /* TTL */
    p[9] = IPPROTO_UDP;
    memcpy(p + 16, &dst, 4);
    p[22] = dport >> 8; p[23] = dport & 255;
    p[24] = (8 + plen) >> 8; p[25] = (8 + plen) & 255;
    memcpy(p + 28, payload, plen);
    iov[b] = (struct iovec){ .iov_base = p, .iov_len = len };
    msgs[b].msg_hdr = (struct msghdr){ .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov[b], .msg_iovlen = 1 };
  }

  uint32_t first = ntohl(src.s_addr);
  uint64_t sent = 0, shortfall = 0, i = 0;
  uint64_t start = now_ns(), end = start + (uint64_t)(duration * 1e9);
  double gap = 1e9 / rate; /* ns between datagrams */
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) break;
    uint64_t due = (uint64_t)((t - start) / gap) + 1; /* how many should be out by now */
    if (sent + shortfall >= due) {
      sleep_until(start + (uint64_t)((sent + shortfall + BATCH / 2) * gap));
      continue;
    }
    int n = (int)(due - sent - shortfall < BATCH ? due - sent - shortfall : BATCH);
    for (int b = 0; b < n; b++, i++) {
      uint32_t s = htonl(first + (uint32_t)(i % (uint64_t)sources));
      uint16_t sp = 1024 + i % 60000;
      memcpy(pkts[b] + 12, &s, 4);
      pkts[b][20] = sp >> 8; pkts[b][21] = sp & 255;
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r < 0) {
      if (errno != ENOBUFS && errno != EAGAIN) { perror("sendmmsg"); return 1; }
      r = 0;
    }
    sent += r;
    shortfall += n - r; /* not retried: a flood does not care, but it is reported */
  }
  double secs = (now_ns() - start) / 1e9;
  printf("{\"sent\":%llu,\"seconds\":%.3f,\"rate\":%.0f,\"short\":%llu}\n", (unsigned long long)sent, secs, sent / secs, (unsigned long long)shortfall);
  return 0;
}
