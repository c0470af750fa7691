// The subset of the Kubernetes Pod API that berthlet honours, parsed from a manifest
// with field-path errors ("spec.containers[1].image: required"). Fields berthlet
// cannot honour (other volume types, ephemeral containers, ...) are rejected, never
// silently dropped; fields that only matter to a cluster (nodeSelector, tolerations,
// ...) are accepted and ignored, as the kubelet ignores them for static pods.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::agent {

struct ExecAction {
  std::vector<std::string> command;
};

struct HttpGetAction {
  std::string path = "/";
  int port = 0;
  std::string host; // empty: the pod IP
  std::string scheme = "HTTP";
  std::vector<std::pair<std::string, std::string>> headers;
};

struct TcpSocketAction {
  int port = 0;
  std::string host;
};

struct GrpcAction {
  int port = 0;
  std::string service;
};

// One of exec, httpGet, tcpSocket, grpc (probes) or exec, httpGet (lifecycle hooks).
struct Handler {
  enum class Kind { none, exec, http_get, tcp_socket, grpc } kind = Kind::none;
  ExecAction exec;
  HttpGetAction http_get;
  TcpSocketAction tcp_socket;
  GrpcAction grpc;
};

struct Probe {
  Handler handler;
  int initial_delay_seconds = 0;
  int period_seconds = 10;
  int timeout_seconds = 1;
  int success_threshold = 1;
  int failure_threshold = 3;
};

struct EnvVar {
  std::string name;
  std::string value;
  std::string field_path; // fieldRef: metadata.name/namespace/uid, status.podIP, spec.nodeName, ...
};

struct ContainerPort {
  std::string name;
  int container_port = 0;
  int host_port = 0;
  std::string protocol = "TCP";
  std::string host_ip;
};

struct VolumeMount {
  std::string name;
  std::string mount_path;
  std::string sub_path;
  bool read_only = false;
};

struct Resources {
  std::optional<int64_t> cpu_request_milli, cpu_limit_milli;
  std::optional<int64_t> memory_request, memory_limit;
};

struct SecurityContext {
  std::optional<int64_t> run_as_user, run_as_group;
  std::optional<bool> run_as_non_root;
  bool privileged = false;
  std::vector<std::string> cap_add, cap_drop;
  bool read_only_root_filesystem = false;
  std::optional<bool> allow_privilege_escalation;
  std::string seccomp_type; // "", RuntimeDefault, Unconfined, Localhost
  std::string seccomp_localhost_profile;
};

struct Container {
  std::string name;
  std::string image;
  std::string image_pull_policy; // Always, IfNotPresent, Never (defaulted)
  std::vector<std::string> command, args;
  std::string working_dir;
  std::vector<EnvVar> env;
  std::vector<ContainerPort> ports;
  std::vector<VolumeMount> volume_mounts;
  Resources resources;
  SecurityContext security_context;
  bool has_security_context = false;
  std::optional<Probe> startup_probe, liveness_probe, readiness_probe;
  std::optional<Handler> post_start, pre_stop;
  bool tty = false, stdin_open = false;
  std::string termination_message_path = "/dev/termination-log";
  std::string hash; // hash of the container's manifest text: a change replaces the container
};

struct Volume {
  std::string name;
  enum class Kind { host_path, empty_dir } kind = Kind::empty_dir;
  std::string host_path;
  std::string host_path_type; // "", Directory, DirectoryOrCreate, File, FileOrCreate, Socket, ...
  std::string empty_dir_medium; // "" or Memory
  std::optional<int64_t> size_limit;
};

struct Sysctl {
  std::string name, value;
};

struct PodSecurityContext {
  std::optional<int64_t> run_as_user, run_as_group, fs_group;
  std::optional<bool> run_as_non_root;
  std::vector<int64_t> supplemental_groups;
  std::vector<Sysctl> sysctls;
  std::string seccomp_type;
  std::string seccomp_localhost_profile;
};

struct DnsConfig {
  std::vector<std::string> nameservers, searches;
  std::vector<std::pair<std::string, std::string>> options; // name, value ("" when none)
};

struct PodSpec {
  std::vector<Container> init_containers, containers;
  std::vector<Volume> volumes;
  std::string restart_policy = "Always";
  int64_t termination_grace_period_seconds = 30;
  bool host_network = false, host_pid = false, host_ipc = false;
  std::string hostname, subdomain;
  std::string dns_policy = "ClusterFirst";
  std::optional<DnsConfig> dns_config;
  PodSecurityContext security_context;
  std::string priority_class_name;
};

struct Pod {
  std::string name;       // as written in the manifest (berthlet appends -<nodename>)
  std::string namespace_; // "default" when empty
  std::string uid;        // as written (usually empty: then derived, see manifest.hpp)
  std::map<std::string, std::string> labels, annotations;
  PodSpec spec;
};

// A pod UID that may name a directory: 1-128 ASCII letters, digits, '-' and '_', starting
// and ending with a letter or digit (UUIDs and berthlet's md5 UIDs are). Used for manifest
// UIDs and for UIDs read back from the runtime's labels before anything is removed by them.
constexpr size_t kMaxUidLength = 128;
bool valid_pod_uid(std::string_view uid);
// DNS-1123 subdomain: dot-separated labels of [a-z0-9-], at most 253 characters.
bool valid_dns1123_subdomain(std::string_view s);
// DNS-1123 label: [a-z0-9-], at most 63 characters, no '-' at either end.
bool valid_dns1123_label(std::string_view s);

// Parses a Pod document (already converted to JSON). Throws berth::Error naming the field.
Pod parse_pod(const nlohmann::json& doc);

// QoS class as the kubelet computes it: Guaranteed, Burstable or BestEffort.
std::string qos_class(const PodSpec& spec);

} // namespace berth::agent
