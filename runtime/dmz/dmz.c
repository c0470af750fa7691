/*
 * berth-dmz: the last program the runtime executes before the container's own.
 *
 * The container init execs this tiny static binary from a sealed memfd, and it
 * execs the user's program. So while the user's program is being loaded,
 * /proc/self/exe is the sealed memfd, never the host's berth binary: a container
 * that runs `#!/proc/self/exe` cannot get a writable handle on the runtime
 * (CVE-2019-5736). The same idea as runc-dmz. No libc: a few hundred bytes of code.
 *
 * argv: [path, args...], or ["#<fd>", path, args...] to first wait for one byte on
 * fd (the exec fifo that `berth start` writes to), so that a created container waits
 * for start here rather than in a copy of berth.
 */

#if defined(__x86_64__)
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_execve 59
#define SYS_exit 60
#define SYS_ppoll 271
static long sys4(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return r;
}
__asm__(".text\n.global _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call dmz_main\n hlt\n");
#elif defined(__aarch64__)
#define SYS_read 63
#define SYS_write 64
#define SYS_close 57
#define SYS_execve 221
#define SYS_exit 93
#define SYS_ppoll 73
static long sys4(long n, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x0, sp\n bl dmz_main\n");
#else
#error "berth-dmz: unsupported architecture"
#endif

#define EINTR 4
#define POLLIN 1

struct pollfd {
  int fd;
  short events, revents;
};

static __attribute__((noreturn)) void die(const char *msg, long len) {
  sys4(SYS_write, 2, (long)msg, len, 0);
  for (;;) sys4(SYS_exit, 127, 0, 0, 0);
}

/* Blocks until one byte arrives. poll() on a fifo whose writer has not opened it yet
 * does not report a hang-up, so this waits for `berth start`. */
static void wait_for_start(int fd) {
  char b;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    long r = sys4(SYS_ppoll, (long)&p, 1, 0, 0);
    if (r < 0 && r != -EINTR) break;
    r = sys4(SYS_read, fd, (long)&b, 1, 0);
    if (r == 1) break;
  }
  sys4(SYS_close, fd, 0, 0, 0);
}

__attribute__((used, noreturn)) void dmz_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc >= 1 && argv[0][0] == '#') {
    int fd = 0;
    for (const char *p = argv[0] + 1; *p >= '0' && *p <= '9'; p++) fd = fd * 10 + (*p - '0');
    wait_for_start(fd);
    argv++;
    argc--;
  }
  if (argc >= 2) sys4(SYS_execve, (long)argv[0], (long)(argv + 1), (long)envp, 0);
  static const char msg[] = "berth-dmz: exec of the container process failed\n";
  die(msg, sizeof msg - 1);
}
