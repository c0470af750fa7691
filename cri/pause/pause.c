/*
 * berth-pause: the process that holds a pod's PID namespace as its PID 1.
 *
 * It sleeps until SIGINT or SIGTERM (then exits 0) and reaps every child that ends in
 * the namespace: orphans are reparented to PID 1, and a PID 1 that does not wait for
 * them fills the namespace with zombies. "-v" prints the version.
 *
 * No signal handlers: SIGINT, SIGTERM and SIGCHLD are blocked and taken synchronously
 * with rt_sigtimedwait(2). A blocked signal is never discarded, even for a namespace's
 * init, whose default-disposition signals the kernel otherwise drops.
 *
 * On x86-64 and arm64 the program uses no C library at all: its own _start and raw
 * system calls, linked -static -nostdlib (a few KiB). Elsewhere it is built against the
 * C library's syscall(2) and linked -static.
 */

#ifndef BERTH_VERSION
#define BERTH_VERSION "unknown"
#endif

#if defined(BERTH_PAUSE_NOLIBC)

#include <asm/unistd.h>

#if defined(__x86_64__)
static long sys4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
__asm__(".text\n"
        ".global _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n" /* argc, argv[], envp[] */
        "  and $-16, %rsp\n"
        "  call pause_main\n"
        "  hlt\n");
#elif defined(__aarch64__)
static long sys4(long n, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
__asm__(".text\n"
        ".global _start\n"
        ".type _start,%function\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  and sp, x0, #-16\n"
        "  bl pause_main\n"
        "  brk #0\n");
#else
#error "BERTH_PAUSE_NOLIBC is for x86_64 and aarch64"
#endif

#define SYS(n, a, b, c, d) sys4(__NR_##n, (long)(a), (long)(b), (long)(c), (long)(d))

#else /* with the C library's syscall(2) */

#include <sys/syscall.h>
#include <unistd.h>

#define SYS(n, a, b, c, d) syscall(SYS_##n, (long)(a), (long)(b), (long)(c), (long)(d))

#endif

/* The generic Linux numbers (x86, arm, arm64, riscv, s390, ppc); mips, alpha, sparc and
 * parisc differ and take the C library's. */
#if defined(BERTH_PAUSE_NOLIBC)
#define P_SIGINT 2
#define P_SIGTERM 15
#define P_SIGCHLD 17
#define P_SIG_BLOCK 0
#else
#include <signal.h>
#define P_SIGINT SIGINT
#define P_SIGTERM SIGTERM
#define P_SIGCHLD SIGCHLD
#define P_SIG_BLOCK SIG_BLOCK
#endif
#define P_WNOHANG 1

/* The kernel's sigset_t: one bit per signal, _NSIG (64) bits. */
typedef unsigned long ksigset[64 / (8 * sizeof(unsigned long))];

static void ksigaddset(ksigset set, int sig) {
  unsigned bit = (unsigned)sig - 1;
  set[bit / (8 * sizeof(unsigned long))] |= 1UL << (bit % (8 * sizeof(unsigned long)));
}

static unsigned long length(const char* s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static void say(int fd, const char* s) { SYS(write, fd, s, length(s), 0); }

static __attribute__((noreturn)) void leave(int status) {
  for (;;) SYS(exit_group, status, 0, 0, 0);
}

static void reap(void) {
  /* Every child that has ended; > 0 while there are more. */
  while (SYS(wait4, -1, 0, P_WNOHANG, 0) > 0) {
  }
}

static int run(long argc, char** argv) {
  if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'v' && argv[1][2] == 0) {
    say(1, "berth-pause " BERTH_VERSION "\n");
    return 0;
  }
  if (SYS(getpid, 0, 0, 0, 0) != 1) say(2, "berth-pause: warning: not PID 1, orphans are not reparented here\n");

  ksigset set = {0};
  ksigaddset(set, P_SIGINT);
  ksigaddset(set, P_SIGTERM);
  ksigaddset(set, P_SIGCHLD);
  if (SYS(rt_sigprocmask, P_SIG_BLOCK, set, 0, sizeof(ksigset)) != 0) {
    say(2, "berth-pause: rt_sigprocmask failed\n");
    return 1;
  }
  reap();
  for (;;) {
    long sig = SYS(rt_sigtimedwait, set, 0, 0, sizeof(ksigset));
    if (sig == P_SIGINT || sig == P_SIGTERM) return 0;
    reap(); /* SIGCHLD (standard signals coalesce: reap all), or an interruption */
  }
}

#if defined(BERTH_PAUSE_NOLIBC)
__attribute__((used, noreturn)) void pause_main(long* sp) { leave(run(sp[0], (char**)(sp + 1))); }
#else
int main(int argc, char** argv) { leave(run(argc, argv)); }
#endif
