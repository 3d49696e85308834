/*
 * Measures what one path lookup of a directory directly under /proc/sys/net costs inside a
 * given network namespace, the step whose cost grows with the number of namespaces.
 *
 *   lookup-cost /run/netns/NAME
 *
 * Prints "lookup_us=X", the mean time of open(O_PATH) plus close of /proc/sys/net/ipv4, and
 * "baseline_us=Y", the same for /proc/sys/net, which does not grow. The `ipv4` entries of all
 * namespaces share one dcache hash chain, newest first, so the cost depends on how many
 * namespaces were created after NAME; the middle one gives the mean.
 *
 * Then the same lookup through a private proc instance, as netnsctl makes them (fsopen,
 * fsmount, attached nowhere): "instance_us=Z" is the mean time of creating an instance, opening
 * sys/net/ipv4 in it and closing both, which frees the instance. "instance_lookup_us=W" is the
 * open plus close of sys/net/ipv4 in an instance that already has it.
 *
 * Build: cc -O2 -o lookup-cost lookup-cost.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double mean_open_us(const char *path)
{
	const int rounds = 200;
	double start = now_us();
	for (int i = 0; i < rounds; i++) {
		int fd = open(path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			perror(path);
			exit(1);
		}
		close(fd);
	}
	return (now_us() - start) / rounds;
}

/* Mounts a new proc instance attached nowhere; returns its mount fd. */
static int mount_proc(void)
{
	int context = syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
	if (context < 0 || syscall(SYS_fsconfig, context, FSCONFIG_CMD_CREATE, NULL, NULL, 0)) {
		perror("fsopen proc");
		exit(1);
	}
	int mount = syscall(SYS_fsmount, context, FSMOUNT_CLOEXEC, 0);
	if (mount < 0) {
		perror("fsmount proc");
		exit(1);
	}
	close(context);
	return mount;
}

static double mean_instance_us(void)
{
	const int rounds = 200;
	double start = now_us();
	for (int i = 0; i < rounds; i++) {
		int mount = mount_proc();
		int fd = openat(mount, "sys/net/ipv4", O_PATH | O_CLOEXEC);
		if (fd < 0) {
			perror("sys/net/ipv4");
			exit(1);
		}
		close(fd);
		close(mount);
	}
	return (now_us() - start) / rounds;
}

static double mean_instance_lookup_us(void)
{
	const int rounds = 200;
	int mount = mount_proc();
	double start = 0;
	/* The first round creates the dentries; the mean is over the rounds after it. */
	for (int i = 0; i <= rounds; i++) {
		if (i == 1)
			start = now_us();
		int fd = openat(mount, "sys/net/ipv4", O_PATH | O_CLOEXEC);
		if (fd < 0) {
			perror("sys/net/ipv4");
			exit(1);
		}
		close(fd);
	}
	double mean = (now_us() - start) / rounds;
	close(mount);
	return mean;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: lookup-cost /run/netns/NAME\n");
		return 2;
	}
	int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET)) {
		perror(argv[1]);
		return 1;
	}
	printf("lookup_us=%.1f\n", mean_open_us("/proc/sys/net/ipv4"));
	printf("baseline_us=%.1f\n", mean_open_us("/proc/sys/net"));
	printf("instance_us=%.1f\n", mean_instance_us());
	printf("instance_lookup_us=%.1f\n", mean_instance_lookup_us());
	return 0;
}
