/*
 * berth-dmz: the last program the runtime executes before the container's own.
 *
 * The container init execs this tiny static binary from a sealed memfd, and it
 * execs the user's program. So while the user's program is being loaded,
 * /proc/self/exe is the sealed memfd, never the host's berth binary: a container
 * that runs `#!/proc/self/exe` cannot get a writable handle on the runtime
 * (CVE-2019-5736). The same idea as runc-dmz. No libc: a few hundred bytes.
 *
 * argv[0] is the resolved path of the program; argv[1..] its arguments.
 */

#if defined(__x86_64__)
#define SYS_write 1
#define SYS_execve 59
#define SYS_exit 60
static long sys3(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}
__asm__(".text\n.global _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call dmz_main\n hlt\n");
#elif defined(__aarch64__)
#define SYS_write 64
#define SYS_execve 221
#define SYS_exit 93
static long sys3(long n, long a, long b, long c) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x0, sp\n bl dmz_main\n");
#else
#error "berth-dmz: unsupported architecture"
#endif

__attribute__((used, noreturn)) void dmz_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc >= 2) sys3(SYS_execve, (long)argv[0], (long)(argv + 1), (long)envp);
  static const char msg[] = "berth-dmz: exec of the container process failed\n";
  sys3(SYS_write, 2, (long)msg, sizeof msg - 1);
  for (;;) sys3(SYS_exit, 127, 0, 0);
}
