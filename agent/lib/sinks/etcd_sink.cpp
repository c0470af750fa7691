#include "agent/lib/sinks/etcd_sink.hpp"

#include <chrono>
#include <set>

#include <fmt/format.h>

#include "agent/lib/log.hpp"
#include "agent/lib/pod.hpp"
#include "agent/lib/status.hpp"
#include "rpc.grpc.pb.h"

namespace berth::agent {
namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

constexpr int kMaxReceiveBytes = 4 << 20;     // a Range page of keys is far less
constexpr int64_t kRangePage = 500;           // keys per Range of a node's pods
constexpr int kMaxRangePages = 200;           // 100000 keys: more is not berthlet's
constexpr int64_t kEventLeaseSeconds = 3600;  // events live about an hour, as in Kubernetes
constexpr auto kEventLeaseRenewal = std::chrono::minutes(6); // a new lease every 6 min: 54-60 min
constexpr auto kRevokeTimeout = std::chrono::seconds(1);
constexpr size_t kMaxErrorBytes = 256; // of one endpoint's error message

// A server's error message as it goes into a log line: bounded, no control characters.
std::string printable(const grpc::Status& st, size_t max = kMaxErrorBytes) {
  auto msg = st.error_message().substr(0, max);
  for (auto& ch : msg)
    if (static_cast<unsigned char>(ch) < ' ' || ch == 0x7f) ch = ' ';
  return msg;
}

// What an answer means for the item: delivered, retried (the cluster is unavailable, or
// refuses for now), or rejected (etcd refuses this request for good, e.g. too large).
Delivery outcome(const grpc::Status& st, const std::string& what) {
  if (st.ok()) return Delivery::ok();
  // When every endpoint failed the message holds each one's (bounded in call()).
  auto why = fmt::format("{}: {} (gRPC code {})", what, printable(st, 20 * kMaxErrorBytes),
                         static_cast<int>(st.error_code()));
  if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT || st.error_code() == grpc::StatusCode::OUT_OF_RANGE)
    return Delivery::rejected(why);
  return Delivery::retry(why);
}

} // namespace

std::string etcd_pod_key(const std::string& prefix, const std::string& node, const nlohmann::json& pod) {
  auto meta = pod.find("metadata");
  if (meta == pod.end() || !meta->is_object()) return "";
  auto text = [&](const char* field) {
    auto f = meta->find(field);
    return f != meta->end() && f->is_string() ? f->get<std::string>() : std::string();
  };
  auto ns = text("namespace"), name = text("name");
  if (!valid_dns1123_subdomain(node) || !valid_dns1123_subdomain(ns) || !valid_dns1123_subdomain(name)) return "";
  return fmt::format("{}/pods/{}/{}/{}", prefix, node, ns, name);
}

std::string etcd_event_key(const std::string& prefix, const std::string& node, uint64_t unix_ns, uint64_t seq) {
  return fmt::format("{}/events/{}/{:020}-{:06}", prefix, node, unix_ns, seq % 1000000);
}

std::string etcd_prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0'); // every key
}

bool etcd_try_next_endpoint(const grpc::Status& st) {
  auto code = st.error_code();
  if (code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED) return true;
  // etcd's own words for a member without a (stable) leader, whatever code carries them.
  const auto& msg = st.error_message();
  return msg.find("no leader") != std::string::npos || msg.find("leader changed") != std::string::npos;
}

struct EtcdSink::Endpoint {
  std::string url, target; // target: host:port
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
};

EtcdSink::EtcdSink(SinkConfig config, std::string node_name) : config_(std::move(config)), node_(std::move(node_name)) {
  for (auto& url : config_.endpoints) {
    auto ep = std::make_unique<Endpoint>();
    ep->url = url;
    ep->target = url.substr(url.find("://") + 3);
    endpoints_.push_back(std::move(ep));
  }
}

EtcdSink::~EtcdSink() {
  if (alive_lease_ == 0 || aborted_ || endpoints_.empty()) return;
  // Stopping cleanly: the node is not alive any more, now rather than in leaseTTL.
  config_.timeout = std::min<std::chrono::milliseconds>(config_.timeout, kRevokeTimeout);
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(alive_lease_);
  etcdserverpb::LeaseRevokeResponse resp;
  auto st = call([&](Endpoint& ep, grpc::ClientContext& ctx) { return ep.lease->LeaseRevoke(&ctx, req, &resp); });
  if (!st.ok()) log_warn("status sink {}: revoking the alive lease: {}", config_.name, printable(st));
}

void EtcdSink::abort() {
  std::lock_guard lock(current_mu_);
  aborted_ = true;
  if (current_) current_->TryCancel();
}

std::chrono::milliseconds EtcdSink::keepalive_period() const { return config_.lease_ttl / 3; }

grpc::Status EtcdSink::call(const Call& fn) {
  std::string errors;
  for (size_t n = 0; n < endpoints_.size(); n++) {
    size_t i = (preferred_ + n) % endpoints_.size();
    auto& ep = *endpoints_[i];
    if (!ep.channel) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
      // A member back from a crash is tried again within seconds, not gRPC's 2 minutes.
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
      ep.channel = grpc::CreateCustomChannel(ep.target, grpc::InsecureChannelCredentials(), args);
      ep.kv = etcdserverpb::KV::NewStub(ep.channel);
      ep.lease = etcdserverpb::Lease::NewStub(ep.channel);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(system_clock::now() + config_.timeout);
    ctx.AddMetadata("hasleader", "true"); // clientv3's WithRequireLeader
    {
      std::lock_guard lock(current_mu_);
      if (aborted_) return {grpc::StatusCode::CANCELLED, "aborted at shutdown"};
      current_ = &ctx;
    }
    auto st = fn(ep, ctx);
    {
      std::lock_guard lock(current_mu_);
      current_ = nullptr;
    }
    if (!etcd_try_next_endpoint(st)) {
      preferred_ = i;
      return st;
    }
    errors += fmt::format("{}{}: {}", errors.empty() ? "" : "; ", ep.url, printable(st));
  }
  return {grpc::StatusCode::UNAVAILABLE, errors};
}

grpc::Status EtcdSink::put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  return call([&](Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Put(&ctx, req, &resp); });
}

grpc::Status EtcdSink::remove(const std::string& key) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  etcdserverpb::DeleteRangeResponse resp;
  return call([&](Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->DeleteRange(&ctx, req, &resp); });
}

grpc::Status EtcdSink::grant(int64_t ttl_seconds, int64_t& lease) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse resp;
  auto st = call([&](Endpoint& ep, grpc::ClientContext& ctx) { return ep.lease->LeaseGrant(&ctx, req, &resp); });
  if (st.ok() && !resp.error().empty()) return {grpc::StatusCode::UNKNOWN, resp.error().substr(0, kMaxErrorBytes)};
  lease = resp.id();
  return st;
}

Delivery EtcdSink::put_alive() {
  auto key = fmt::format("{}/alive/{}", config_.prefix, node_);
  int64_t lease = 0;
  auto st = grant(config_.lease_ttl.count() / 1000, lease);
  if (st.ok()) st = put(key, nlohmann::json({{"node", node_}, {"since", k8s_time_now()}}).dump(), lease);
  if (!st.ok()) return outcome(st, "alive key " + key);
  alive_lease_ = lease;
  return Delivery::ok();
}

Delivery EtcdSink::keepalive() {
  if (alive_lease_ == 0) return put_alive();
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(alive_lease_);
  etcdserverpb::LeaseKeepAliveResponse resp;
  // One request on a stream of its own: no stream to watch between keepalives.
  auto st = call([&](Endpoint& ep, grpc::ClientContext& ctx) {
    auto stream = ep.lease->LeaseKeepAlive(&ctx);
    if (stream->Write(req) && stream->Read(&resp)) stream->WritesDone();
    return stream->Finish();
  });
  if (!st.ok()) return outcome(st, "alive lease keepalive");
  if (resp.ttl() > 0) return Delivery::ok();
  // The lease expired (berthlet was cut off from the cluster for longer than leaseTTL) and
  // took the alive key with it: a new lease and the key again.
  log_warn("status sink {}: the alive lease {:x} expired; granting a new one", config_.name, alive_lease_);
  alive_lease_ = 0;
  return put_alive();
}

Delivery EtcdSink::put_event(const SinkItem& item) {
  if (event_key_.empty() || event_version_ != item.version) { // a retry keeps its key: no duplicate
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(system_clock::now().time_since_epoch()).count();
    event_key_ = etcd_event_key(config_.prefix, node_, static_cast<uint64_t>(ns), event_seq_++);
    event_version_ = item.version;
  }
  grpc::Status st;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (event_lease_ == 0 || steady_clock::now() - event_lease_granted_ > kEventLeaseRenewal) {
      if (st = grant(kEventLeaseSeconds, event_lease_); !st.ok()) {
        event_lease_ = 0;
        return outcome(st, "event lease");
      }
      event_lease_granted_ = steady_clock::now();
    }
    st = put(event_key_, item.object->dump(), event_lease_);
    if (st.error_code() != grpc::StatusCode::NOT_FOUND) break;
    event_lease_ = 0; // "requested lease not found": revoked by someone, or expired
  }
  if (st.ok()) event_key_.clear();
  return outcome(st, "event " + event_key_);
}

Delivery EtcdSink::delete_pod(const std::string& key, const std::string& uid) {
  auto at = uid_at_.find(key);
  // A new pod of the same name (a changed manifest) was put there since: the key is its.
  if (at != uid_at_.end() && at->second != uid) return Delivery::ok();
  auto st = remove(key);
  if (st.ok()) uid_at_.erase(key);
  return outcome(st, "delete " + key);
}

// Removes the keys of this node's pods that are not in the set (deleted while berthlet was
// down), reading the keys a page at a time.
Delivery EtcdSink::remove_stale(const nlohmann::json& pod_set) {
  std::set<std::string> keep;
  auto pods = pod_set.value("pods", nlohmann::json::array());
  for (auto& p : pods)
    if (p.is_object()) keep.insert(etcd_pod_key(config_.prefix, node_, {{"metadata", p}}));
  auto dir = fmt::format("{}/pods/{}/", config_.prefix, node_);
  etcdserverpb::RangeRequest req;
  req.set_key(dir);
  req.set_range_end(etcd_prefix_end(dir));
  req.set_limit(kRangePage);
  req.set_keys_only(true);
  std::vector<std::string> stale;
  for (int page = 0; page < kMaxRangePages; page++) {
    etcdserverpb::RangeResponse resp;
    auto st = call([&](Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Range(&ctx, req, &resp); });
    if (!st.ok()) return outcome(st, "list " + dir);
    for (auto& kv : resp.kvs())
      if (!keep.count(kv.key())) stale.push_back(kv.key());
    if (!resp.more() || resp.kvs().empty()) break;
    req.set_key(resp.kvs().rbegin()->key() + '\0'); // the next page starts after the last key
  }
  for (auto& key : stale) {
    auto st = remove(key);
    if (!st.ok()) return outcome(st, "delete " + key);
    uid_at_.erase(key);
    log_info("status sink {}: removed {} (its pod is gone)", config_.name, key);
  }
  return Delivery::ok();
}

Delivery EtcdSink::deliver(const SinkItem& item) {
  if (!valid_dns1123_subdomain(node_))
    return Delivery::rejected(fmt::format("node name {:?} is not a DNS-1123 name: no etcd key", node_));
  if (alive_lease_ == 0) // the node is alive before anything else of it is written
    if (auto d = put_alive(); d.outcome != Delivery::Outcome::delivered) return Delivery::retry(d.error);
  switch (item.kind) {
  case SinkItem::Kind::node: {
    auto key = fmt::format("{}/nodes/{}", config_.prefix, node_);
    return outcome(put(key, item.object->dump(), 0), "put " + key);
  }
  case SinkItem::Kind::pod:
  case SinkItem::Kind::pod_deleted: {
    auto key = etcd_pod_key(config_.prefix, node_, *item.object);
    if (key.empty()) return Delivery::rejected("the pod has no valid namespace and name for an etcd key");
    if (item.kind == SinkItem::Kind::pod_deleted) return delete_pod(key, item.key);
    auto st = put(key, item.object->dump(), 0);
    if (st.ok()) uid_at_[key] = item.key;
    return outcome(st, "put " + key);
  }
  case SinkItem::Kind::event: return put_event(item);
  case SinkItem::Kind::pod_set: return remove_stale(*item.object);
  }
  return Delivery::rejected("unknown item kind");
}

} // namespace berth::agent
