"""linux.seccomp: errno actions, defaultErrnoRet, argument conditions, name validation,
SCMP_ACT_NOTIFY with a listener."""
import errno
import fcntl
import json
import os
import select
import socket
import struct
import threading

import pytest

import helpers as H
from helpers import assert_ok, sh, update_config

ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

# Every x86_64 syscall up to rseq (334) but uname, plus a few newer ones libseccomp 2.5 knows.
ALLOW_ALL_BUT_UNAME = """
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap msync mincore madvise
shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket connect accept
sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair setsockopt getsockopt
clone fork vfork execve exit wait4 kill semget semop semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock fsync
fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat link unlink symlink readlink
chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo times ptrace getuid syslog
getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid setregid getgroups setgroups
setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid getsid capget capset rt_sigpending
rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime mknod personality ustat statfs fstatfs
getpriority setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler
sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock mlockall munlockall vhangup
modify_ldt pivot_root prctl arch_prctl adjtimex setrlimit chroot sync acct settimeofday mount umount2
sethostname setdomainname gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr
listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
sched_getaffinity set_thread_area get_thread_area getdents64 set_tid_address restart_syscall semtimedop
fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime
clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes mbind set_mempolicy get_mempolicy
mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr waitid add_key request_key keyctl
ioprio_set ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat
fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll
unshare set_robust_list get_robust_list splice tee sync_file_range vmsplice move_pages utimensat epoll_pwait
signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2
epoll_create epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo recvmmsg prlimit64
name_to_handle_at open_by_handle_at syncfs sendmmsg setns getcpu kcmp sched_setattr sched_getattr renameat2
seccomp getrandom memfd_create execveat membarrier mlock2 copy_file_range preadv2 pwritev2 statx rseq
clone3 close_range openat2 faccessat2 pidfd_open pidfd_send_signal
""".split()


def seccomp_cfg(bundle, seccomp):
    seccomp.setdefault("architectures", ARCHES)
    update_config(bundle, lambda c: c["linux"].__setitem__("seccomp", seccomp))


MKDIR = ["mkdir", "mkdirat"]
MKDIR_SCRIPT = "mkdir /dev/shm/d 2>&1; echo rc=$?; echo still-alive"


def test_uname_errno(env, bundle):
    """busybox uname ignores the error and prints an empty name: the syscall was refused."""
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EADDRNOTAVAIL}]})
    sh(bundle, "echo \"[$(uname -s)]\"; echo still-alive")
    assert env.run_ok(bundle).split() == ["[]", "still-alive"]


def test_errno_ret(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EADDRNOTAVAIL}]})
    sh(bundle, MKDIR_SCRIPT)
    out = env.run_ok(bundle)
    assert os.strerror(errno.EADDRNOTAVAIL) in out and "rc=1" in out and "still-alive" in out, out


def test_errno_default_eperm(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": MKDIR, "action": "SCMP_ACT_ERRNO"}]})
    sh(bundle, MKDIR_SCRIPT)
    out = env.run_ok(bundle)
    assert "Operation not permitted" in out and "rc=1" in out, out


def test_no_seccomp(env, bundle):
    sh(bundle, "uname; " + MKDIR_SCRIPT)
    assert env.run_ok(bundle).split() == ["Linux", "rc=0", "still-alive"]


def test_default_errno_ret(env, bundle):
    allow = [n for n in ALLOW_ALL_BUT_UNAME if n not in MKDIR]
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EXDEV,
                         "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]})
    sh(bundle, MKDIR_SCRIPT)
    out = env.run_ok(bundle)
    assert os.strerror(errno.EXDEV) in out and "rc=1" in out, out


def test_arg_condition(env, bundle):
    """kill(pid, 0) is refused; kill(pid, SIGCONT) is not."""
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]})
    sh(bundle, "kill -0 $$ 2>/dev/null; echo a=$?; kill -CONT $$; echo b=$?")
    assert env.run_ok(bundle).split() == ["a=1", "b=0"]


def test_arg_condition_masked_eq(env, bundle):
    """personality(PER_LINUX32) refused via SCMP_CMP_MASKED_EQ on the low byte."""
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
         "args": [{"index": 0, "value": 0xff, "valueTwo": 0x08, "op": "SCMP_CMP_MASKED_EQ"}]}]})
    sh(bundle, "linux32 true 2>/dev/null; echo a=$?; linux64 true; echo b=$?")
    assert env.run_ok(bundle).split() == ["a=1", "b=0"]


def test_kill_action(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["uname"], "action": "SCMP_ACT_KILL"}]})
    set_args = H.set_args
    set_args(bundle, "uname")
    res = env.run(bundle)
    assert res.rc == 128 + 31, res  # SIGSYS


@pytest.mark.berth_only
def test_unknown_syscall_rejected(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["uname", "definitely_not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]})
    H.set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    assert "definitely_not_a_syscall" in res.err, res
    assert "linux.seccomp.syscalls[0].names[1]" in res.err, res
    env.assert_no_trace(res.cid, bundle)


def test_unknown_action_rejected(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["uname"], "action": "SCMP_ACT_BOGUS"}]})
    H.set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


@pytest.mark.berth_only
def test_unknown_action_names_field(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["uname"], "action": "SCMP_ACT_BOGUS"}]})
    H.set_args(bundle, "true")
    res = env.create(bundle)
    assert "linux.seccomp.syscalls[0].action" in res.err and "SCMP_ACT_BOGUS" in res.err, res


# ---- SCMP_ACT_NOTIFY -------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
NR_MKDIR, NR_MKDIRAT = 83, 258


class NotifyListener:
    """Accepts the runtime's connection, receives the containerProcessState JSON and the
    seccomp fd, then answers notifications for uname with -EPROTO."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(2)
        self.state = None
        self.nfds = 0
        self.seen = []
        self.error = None
        self.stop = threading.Event()
        self.got_fd = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        fd = -1
        try:
            self.sock.settimeout(60)
            conn, _ = self.sock.accept()
            with conn:
                payload, fds = H.recv_fd(conn)
                self.nfds = len(fds)
                for extra in fds[1:]:
                    os.close(extra)
                fd = fds[0] if fds else -1
                self.state = json.loads(payload)
            self.got_fd.set()
            while not self.stop.is_set() and fd >= 0:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
                    continue
                buf = bytearray(80)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EINTR):
                        continue
                    break  # container gone
                nid, pid, flags, nr, arch = struct.unpack_from("<QIIiI", buf)
                self.seen.append(nr)
                resp = struct.pack("<QqiI", nid, 0, -errno.EPROTO, 0)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp), True)
                except OSError:
                    pass
        except Exception as e:  # noqa: BLE001
            self.error = e
            self.got_fd.set()
        finally:
            if fd >= 0:
                os.close(fd)

    def close(self):
        self.stop.set()
        self.sock.close()
        self.t.join(10)
        if os.path.exists(self.path):
            os.unlink(self.path)


def test_notify_listener(env, bundle):
    path = env.sock_path("seccomp")
    listener = NotifyListener(path)
    env.add_cleanup(listener.close)
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                         "listenerMetadata": "meta-data-42",
                         "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}]})
    sh(bundle, MKDIR_SCRIPT)
    res = assert_ok(env.create(bundle))
    assert listener.got_fd.wait(20), "the runtime never connected to listenerPath"
    assert listener.error is None, listener.error
    st = listener.state
    assert listener.nfds == 1, f"expected exactly one fd, got {listener.nfds}"
    assert st["fds"] == ["seccompFd"], st
    assert st["metadata"] == "meta-data-42", st
    assert "ociVersion" in st
    cstate = env.state(res.cid)
    assert st["pid"] == cstate["pid"], (st, cstate)
    assert st["state"]["id"] == res.cid, st
    assert os.path.realpath(st["state"]["bundle"]) == os.path.realpath(bundle), st
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped", timeout=20)
    out = res.reread().out
    assert os.strerror(errno.EPROTO) in out and "rc=1" in out, out
    assert set(listener.seen) & {NR_MKDIR, NR_MKDIRAT}, listener.seen


def test_notify_without_listener_path_fails(env, bundle):
    seccomp_cfg(bundle, {"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_NOTIFY"}]})
    H.set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)
