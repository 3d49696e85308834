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
 * Build: cc -O2 -o lookup-cost lookup-cost.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
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
	return 0;
}
