/*
 * seccomp probe for spec-tests/tests/runtime_seccomp_args.rs: makes raw system calls (so
 * that glibc cannot turn an error into a fallback) and prints NAME=RESULT per line,
 * RESULT being the return value, 0 for a successful clone, or -errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long ret)
{
	printf("%s=%ld\n", name, ret < 0 ? -(long)errno : ret);
}

/* clone(2) without a new stack: the child exits at once. */
static void try_clone(const char *name, unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		syscall(SYS_exit, 0);
	if (pid > 0) {
		waitpid(pid, NULL, 0);
		pid = 0;
	}
	report(name, pid);
}

int main(void)
{
	try_clone("clone_plain", 0);
	try_clone("clone_newuts", CLONE_NEWUTS);
	report("socket_0x10", syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0x10));
	report("socket_0x30", syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0x30));
	report("unshare", syscall(SYS_unshare, 0));
	report("syscall_1000", syscall(1000, 0, 0, 0));
	return 0;
}
