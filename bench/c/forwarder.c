/*
 * The machine's ceiling for bench/relay-throughput.ts: the smallest useful UDP forwarder.
 *
 * Two sockets on 127.0.0.1 (like one relay session: one port per side). Each socket remembers the source of
 * the last datagram it received (its "peer"); every datagram received on one socket is sent out of the other
 * socket to that socket's peer. Batches of up to BATCH datagrams move with one recvmmsg(2) and one sendmmsg(2),
 * straight from the receive buffers (no copy). No checks at all: this is what the relay is measured against.
 *
 *   forwarder [PORT_A PORT_B [ADDR]]     (ports 0 or absent: the kernel picks; ADDR default 127.0.0.1,
 *                                         0.0.0.0 in bench/relay-offload.ts's relay namespace)
 *
 * Prints one line "ready PORT_A PORT_B" when bound, and on SIGTERM/SIGINT one JSON line with its counters.
 * Socket buffers stay at the kernel default (net.core.rmem_default), the same as Bun's sockets get, so the
 * comparison is like for like.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXDGRAM 2048

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

struct side {
  int fd;
  int port;
  int has_peer;
  struct sockaddr_in peer;
};

static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];
static struct sockaddr_in from[BATCH];
static unsigned char bufs[BATCH][MAXDGRAM];
static unsigned long long received, forwarded, dropped_no_peer, dropped_send;

static struct in_addr bind_addr;

static int bind_udp(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) { perror("socket"); exit(1); }
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = bind_addr };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  return fd;
}

static int local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

/* Drains one socket: receive a batch, forward it out of the other side, until the socket would block. */
static void pump(struct side *in, struct side *out) {
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iovs[i].iov_base = bufs[i];
      iovs[i].iov_len = MAXDGRAM;
      msgs[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iovs[i], .msg_iovlen = 1 };
    }
    int n = recvmmsg(in->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    received += n;
    in->peer = from[n - 1];
    in->has_peer = 1;
    if (!out->has_peer) { dropped_no_peer += n; continue; }
    for (int i = 0; i < n; i++) {
      iovs[i].iov_len = msgs[i].msg_len;
      msgs[i].msg_hdr.msg_name = &out->peer;
      msgs[i].msg_hdr.msg_namelen = sizeof out->peer;
    }
    int sent = 0;
    while (sent < n) {
      int m = sendmmsg(out->fd, msgs + sent, n - sent, MSG_DONTWAIT);
      if (m <= 0) break; /* EAGAIN: the datagram is lost, as a kernel queue overflow would lose it */
      sent += m;
    }
    forwarded += sent;
    dropped_send += n - sent;
  }
}

int main(int argc, char **argv) {
  bind_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (argc > 3 && inet_pton(AF_INET, argv[3], &bind_addr) != 1) { fprintf(stderr, "forwarder: bad address %s\n", argv[3]); return 2; }
  struct side a = { .fd = bind_udp(argc > 1 ? atoi(argv[1]) : 0) };
  struct side b = { .fd = bind_udp(argc > 2 ? atoi(argv[2]) : 0) };
  a.port = local_port(a.fd);
  b.port = local_port(b.fd);
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a };
  epoll_ctl(ep, EPOLL_CTL_ADD, a.fd, &ev);
  ev.data.ptr = &b;
  epoll_ctl(ep, EPOLL_CTL_ADD, b.fd, &ev);
  printf("ready %d %d\n", a.port, b.port);
  fflush(stdout);

  struct epoll_event events[2];
  while (!stop) {
    int n = epoll_wait(ep, events, 2, 200);
    if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      struct side *in = events[i].data.ptr;
      pump(in, in == &a ? &b : &a);
    }
  }
  printf("{\"received\":%llu,\"forwarded\":%llu,\"dropped_no_peer\":%llu,\"dropped_send\":%llu}\n", received, forwarded,
         dropped_no_peer, dropped_send);
  return 0;
}
