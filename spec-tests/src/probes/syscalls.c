/* Calls each syscall named on the command line with harmless arguments and prints
 * "NAME ERRNO" (0 when the call succeeded): what a seccomp filter lets through shows as
 * the kernel's own answer, what it denies as the filter's errno. Built static by the
 * tests (cc -static) so it runs in a busybox rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static long call(const char *name) {
    static char params[120];
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "uname")) { static char buf[512]; return syscall(SYS_uname, buf); }
    if (!strcmp(name, "personality")) return syscall(SYS_personality, 0xffffffffUL);
    if (!strcmp(name, "unshare")) return syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -2 /* process */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "probe", "x", 1, -2);
    if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "probe-absent", 0, 0);
    if (!strcmp(name, "setns")) return syscall(SYS_setns, -1, 0);
    if (!strcmp(name, "kcmp")) return syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0);
    if (!strcmp(name, "pidfd_getfd")) return syscall(SYS_pidfd_getfd, -1, 0, 0);
    if (!strcmp(name, "clone3")) return syscall(SYS_clone3, NULL, 0);
    if (!strcmp(name, "socket_vsock")) return syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0);
    if (!strcmp(name, "socket_inet")) return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (!strcmp(name, "io_uring_setup")) { memset(params, 0, sizeof params); return syscall(SYS_io_uring_setup, 1, params); }
    errno = ENOENT;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        /* Each call in its own child: one that succeeds (unshare) changes the caller. */
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            errno = 0;
            long r = call(argv[i]);
            if (r == -2 && errno == ENOENT) printf("%s unknown\n", argv[i]);
            else printf("%s %d\n", argv[i], r < 0 ? errno : 0);
            fflush(stdout);
            _exit(0);
        }
        if (child < 0 || waitpid(child, NULL, 0) != child) { perror("fork"); return 1; }
    }
    return 0;
}
