/*
 * The floor: the least work that gives N named network namespaces the same state netnsctl
 * gives them, done in one single-threaded process with no helper binaries.
 *
 *   floor apply PREFIX N RULESET_FILE [veth]
 *   floor teardown PREFIX N
 *   floor teardown-held PREFIX N
 *
 * Namespace i (1..N) is PREFIX followed by i in four digits. Each gets: a bind mount of a new
 * network namespace at /run/netns/NAME, lo up, four net.* sysctls, the ruleset from
 * RULESET_FILE loaded through libnftables (after "flush ruleset", in one transaction), and an
 * empty /etc/netns/NAME/resolv.conf. With "veth": a veth pair veth0 (inside) / h-NAME (in the
 * caller's namespace), addresses on both ends (see address_plan in run.sh), both ends up,
 * and IPv4 and IPv6 default routes inside via the host end.
 *
 * Teardown undoes the registration as `ip netns delete` does (lazy unmount, unlink) and removes
 * the resolv.conf and its directory; the host ends of veth pairs disappear with the namespace.
 *
 * Build: cc -O2 -o floor floor.c -lnftables
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define die(...) do { fprintf(stderr, "floor: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/*
 * Sysctls as (directory under /proc/sys/net, path below it, value). Each directory is opened
 * once per namespace: looking up a directory directly under /proc/sys/net costs time in
 * proportion to the number of namespaces, and the paths below it are cheap.
 */
static const char *const SYSCTLS[][3] = {
	{"ipv4", "ip_forward", "1"},
	{"ipv6", "conf/all/forwarding", "1"},
	{"ipv4", "conf/all/rp_filter", "2"},
	{"ipv4", "tcp_syncookies", "1"},
};

struct request {
	struct nlmsghdr header;
	char payload[1024];
};

static unsigned sequence;

static void *tail(struct nlmsghdr *header)
{
	return (char *)header + NLMSG_ALIGN(header->nlmsg_len);
}

static struct rtattr *put(struct nlmsghdr *header, unsigned short type, const void *data, int length)
{
	struct rtattr *attribute = tail(header);
	attribute->rta_type = type;
	attribute->rta_len = RTA_LENGTH(length);
	if (length)
		memcpy(RTA_DATA(attribute), data, length);
	header->nlmsg_len = NLMSG_ALIGN(header->nlmsg_len) + RTA_ALIGN(attribute->rta_len);
	return attribute;
}

static void end_nest(struct nlmsghdr *header, struct rtattr *nest)
{
	nest->rta_len = (char *)tail(header) - (char *)nest;
}

static int open_rtnl(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	return fd;
}

/* Sends one request with NLM_F_ACK and waits for the acknowledgement. */
static void talk(int fd, struct nlmsghdr *header, const char *what)
{
	char buffer[4096];
	header->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	header->nlmsg_seq = ++sequence;
	if (send(fd, header, header->nlmsg_len, 0) < 0)
		die("%s: send: %s", what, strerror(errno));
	ssize_t size = recv(fd, buffer, sizeof(buffer), 0);
	if (size < 0)
		die("%s: recv: %s", what, strerror(errno));
	struct nlmsghdr *reply = (struct nlmsghdr *)buffer;
	if (reply->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *error = NLMSG_DATA(reply);
		if (error->error)
			die("%s: %s", what, strerror(-error->error));
	}
}

static struct nlmsghdr *start(struct request *request, unsigned short type, unsigned short flags, int length)
{
	memset(request, 0, sizeof(*request));
	request->header.nlmsg_len = NLMSG_LENGTH(length);
	request->header.nlmsg_type = type;
	request->header.nlmsg_flags = flags;
	return &request->header;
}

static void link_up(int fd, int index)
{
	struct request request;
	struct nlmsghdr *header = start(&request, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *info = NLMSG_DATA(header);
	info->ifi_index = index;
	info->ifi_flags = IFF_UP;
	info->ifi_change = IFF_UP;
	talk(fd, header, "set link up");
}

static void add_veth(int fd, const char *name, const char *peer, int peer_netns_fd)
{
	struct request request;
	struct nlmsghdr *header = start(&request, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
	put(header, IFLA_IFNAME, name, strlen(name) + 1);
	struct rtattr *linkinfo = put(header, IFLA_LINKINFO, NULL, 0);
	put(header, IFLA_INFO_KIND, "veth", 4);
	struct rtattr *data = put(header, IFLA_INFO_DATA, NULL, 0);
	struct rtattr *peer_info = put(header, VETH_INFO_PEER, NULL, 0);
	header->nlmsg_len += sizeof(struct ifinfomsg);
	put(header, IFLA_IFNAME, peer, strlen(peer) + 1);
	put(header, IFLA_NET_NS_FD, &peer_netns_fd, sizeof(peer_netns_fd));
	end_nest(header, peer_info);
	end_nest(header, data);
	end_nest(header, linkinfo);
	talk(fd, header, "create veth");
}

static void add_address(int fd, int index, int family, const void *address, int prefix)
{
	struct request request;
	struct nlmsghdr *header = start(&request, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
	struct ifaddrmsg *message = NLMSG_DATA(header);
	int length = family == AF_INET ? 4 : 16;
	message->ifa_family = family;
	message->ifa_prefixlen = prefix;
	message->ifa_index = index;
	message->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	put(header, IFA_LOCAL, address, length);
	if (family == AF_INET)
		put(header, IFA_ADDRESS, address, length);
	talk(fd, header, "add address");
}

static void add_default_route(int fd, int family, const void *gateway)
{
	struct request request;
	struct nlmsghdr *header = start(&request, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
	struct rtmsg *message = NLMSG_DATA(header);
	message->rtm_family = family;
	message->rtm_table = RT_TABLE_MAIN;
	message->rtm_protocol = RTPROT_STATIC;
	message->rtm_scope = RT_SCOPE_UNIVERSE;
	message->rtm_type = RTN_UNICAST;
	put(header, RTA_GATEWAY, gateway, family == AF_INET ? 4 : 16);
	talk(fd, header, "add default route");
}

static void write_file_at(int dir, const char *path, const char *text, int flags)
{
	int fd = openat(dir, path, O_WRONLY | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	size_t length = strlen(text);
	if (length && write(fd, text, length) != (ssize_t)length)
		die("write %s: %s", path, strerror(errno));
	close(fd);
}

static char *read_file(const char *path)
{
	FILE *file = fopen(path, "r");
	if (!file)
		die("open %s: %s", path, strerror(errno));
	static char text[65536];
	size_t size = fread(text, 1, sizeof(text) - 1, file);
	fclose(file);
	text[size] = 0;
	return text;
}

/* Makes /run/netns a shared mount point, as iproute2 and netnsctl do. */
static void prepare_run_dir(void)
{
	mkdir("/run/netns", 0755);
	if (mount(NULL, "/run/netns", NULL, MS_SHARED | MS_REC, NULL) == 0)
		return;
	if (errno != EINVAL || mount("/run/netns", "/run/netns", NULL, MS_BIND | MS_REC, NULL) ||
	    mount(NULL, "/run/netns", NULL, MS_SHARED | MS_REC, NULL))
		die("cannot make /run/netns shared: %s", strerror(errno));
}

static void load_ruleset(const char *script)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!nft)
		die("nft_ctx_new failed");
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, script))
		die("ruleset: %s", nft_ctx_get_error_buffer(nft));
	nft_ctx_free(nft);
}

static void apply_one(const char *name, int index, const char *script, int veth, int host_fd, int host_rtnl)
{
	char path[256];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	close(fd);
	if (unshare(CLONE_NEWNET))
		die("unshare: %s", strerror(errno));
	if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL))
		die("bind mount %s: %s", path, strerror(errno));

	int rtnl = open_rtnl();
	link_up(rtnl, 1); /* lo is index 1 in every new namespace */
	int ipv4 = open("/proc/sys/net/ipv4", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int ipv6 = open("/proc/sys/net/ipv6", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ipv4 < 0 || ipv6 < 0)
		die("open /proc/sys/net/ipv4 or ipv6: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(SYSCTLS) / sizeof(SYSCTLS[0]); i++)
		write_file_at(strcmp(SYSCTLS[i][0], "ipv4") == 0 ? ipv4 : ipv6, SYSCTLS[i][1], SYSCTLS[i][2], 0);
	close(ipv4);
	close(ipv6);
	load_ruleset(script);

	if (veth) {
		char peer[IFNAMSIZ];
		snprintf(peer, sizeof(peer), "h-%s", name);
		add_veth(rtnl, "veth0", peer, host_fd);
		int inner = if_nametoindex("veth0");
		/* Host ends are looked up through the host socket, which stays in the host namespace. */
		unsigned char v4_host[4] = {10, 123, (index * 4) >> 8, ((index * 4) & 0xff) + 1};
		unsigned char v4_inner[4] = {10, 123, (index * 4) >> 8, ((index * 4) & 0xff) + 2};
		struct in6_addr v6_host = {0}, v6_inner = {0};
		v6_host.s6_addr[0] = 0xfd;
		v6_host.s6_addr[6] = index >> 8;
		v6_host.s6_addr[7] = index & 0xff;
		v6_inner = v6_host;
		v6_host.s6_addr[15] = 1;
		v6_inner.s6_addr[15] = 2;
		add_address(rtnl, inner, AF_INET, v4_inner, 30);
		add_address(rtnl, inner, AF_INET6, &v6_inner, 64);
		link_up(rtnl, inner);

		/* if_nametoindex works on the calling task's namespace, so ask netlink in the host. */
		struct request request;
		struct nlmsghdr *header = start(&request, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
		put(header, IFLA_IFNAME, peer, strlen(peer) + 1);
		header->nlmsg_flags = NLM_F_REQUEST;
		header->nlmsg_seq = ++sequence;
		char buffer[8192];
		if (send(host_rtnl, header, header->nlmsg_len, 0) < 0 ||
		    recv(host_rtnl, buffer, sizeof(buffer), 0) < 0)
			die("get link %s: %s", peer, strerror(errno));
		struct nlmsghdr *reply = (struct nlmsghdr *)buffer;
		if (reply->nlmsg_type != RTM_NEWLINK)
			die("get link %s: unexpected reply", peer);
		int host_index = ((struct ifinfomsg *)NLMSG_DATA(reply))->ifi_index;
		add_address(host_rtnl, host_index, AF_INET, v4_host, 30);
		add_address(host_rtnl, host_index, AF_INET6, &v6_host, 64);
		link_up(host_rtnl, host_index);

		add_default_route(rtnl, AF_INET, v4_host);
		add_default_route(rtnl, AF_INET6, &v6_host);
	}
	close(rtnl);

	snprintf(path, sizeof(path), "/etc/netns/%s", name);
	if (mkdir(path, 0755) && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	strcat(path, "/resolv.conf");
	write_file_at(AT_FDCWD, path, "", O_CREAT | O_TRUNC);
}

static void teardown_one(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	if (umount2(path, MNT_DETACH) && errno != EINVAL && errno != ENOENT)
		die("umount %s: %s", path, strerror(errno));
	if (unlink(path) && errno != ENOENT)
		die("unlink %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "/etc/netns/%s/resolv.conf", name);
	if (unlink(path) && errno != ENOENT)
		die("unlink %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "/etc/netns/%s", name);
	if (rmdir(path) && errno != ENOENT)
		die("rmdir %s: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc < 4)
		die("usage: floor apply PREFIX N RULESET_FILE [veth] | floor teardown[-held] PREFIX N");
	const char *prefix = argv[2];
	int count = atoi(argv[3]);
	if (count < 1 || count > 9999)
		die("N must be 1..9999");
	char name[64];
	if (strcmp(argv[1], "teardown-held") == 0) {
		/*
		 * The same with a reference to every namespace held until the end, so the kernel
		 * destroys none of them while the unmounts run (see docs/BENCHMARKS.md).
		 */
		for (int i = 1; i <= count; i++) {
			char path[256];
			snprintf(path, sizeof(path), "/run/netns/%s%04d", prefix, i);
			if (open(path, O_RDONLY | O_CLOEXEC) < 0)
				die("open %s: %s", path, strerror(errno));
		}
		for (int i = 1; i <= count; i++) {
			snprintf(name, sizeof(name), "%s%04d", prefix, i);
			teardown_one(name);
		}
		return 0;
	}
	if (strcmp(argv[1], "teardown") == 0) {
		for (int i = 1; i <= count; i++) {
			snprintf(name, sizeof(name), "%s%04d", prefix, i);
			teardown_one(name);
		}
		return 0;
	}
	if (strcmp(argv[1], "apply") != 0 || argc < 5)
		die("unknown mode %s", argv[1]);
	int veth = argc > 5 && strcmp(argv[5], "veth") == 0;
	char *script;
	const char *ruleset = read_file(argv[4]);
	if (asprintf(&script, "flush ruleset; %s", ruleset) < 0)
		die("out of memory");
	int host_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int host_rtnl = open_rtnl();
	prepare_run_dir();
	mkdir("/etc/netns", 0755);
	for (int i = 1; i <= count; i++) {
		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		apply_one(name, i, script, veth, host_fd, host_rtnl);
	}
	return 0;
}
