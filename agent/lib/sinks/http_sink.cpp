#include "agent/lib/sinks/http_sink.hpp"

#include <fmt/format.h>

#include "agent/lib/curl_lazy.hpp"
#include "agent/lib/manifest.hpp"

namespace berth::agent {
namespace {

constexpr size_t kMaxCredentialBytes = 16 << 10, kMaxReplyBytes = 512;

size_t keep_reply(char* data, size_t size, size_t n, void* user) {
  auto* reply = static_cast<std::string*>(user);
  size_t len = size * n;
  if (reply->size() < kMaxReplyBytes) reply->append(data, std::min(len, kMaxReplyBytes - reply->size()));
  return len;
}

} // namespace

HttpSink::HttpSink(SinkConfig config) : config_(std::move(config)) {}

HttpSink::~HttpSink() {
  std::string error;
  if (curl_)
    if (const CurlApi* c = curl_api(error)) c->easy_cleanup(curl_);
}

Delivery::Outcome HttpSink::classify(long status) {
  if (status >= 200 && status < 300) return Delivery::Outcome::delivered;
  if (status == 408 || status == 429 || status >= 500 || status < 200) return Delivery::Outcome::retry;
  return Delivery::Outcome::rejected; // 3xx (not followed) and the other 4xx
}

Delivery HttpSink::post(const std::string& url, const std::string& body) {
  std::string error;
  const CurlApi* c = curl_api(error);
  if (!c) return Delivery::retry(error);
  if (!curl_ && !(curl_ = c->easy_init())) return Delivery::retry("curl_easy_init failed");
  c->easy_reset(curl_);
  std::string auth_header;
  try {
    if (!config_.bearer_token_file.empty())
      auth_header = "Authorization: Bearer " + trim_trailing_space(read_bounded_file(config_.bearer_token_file, kMaxCredentialBytes));
    if (!config_.basic_auth_file.empty()) {
      auto userpass = trim_trailing_space(read_bounded_file(config_.basic_auth_file, kMaxCredentialBytes));
      c->easy_setopt(curl_, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      c->easy_setopt(curl_, CURLOPT_USERPWD, userpass.c_str()); // libcurl copies it
    }
  } catch (const std::exception& e) {
    return Delivery::retry(e.what()); // a credential file being replaced: try again
  }
  struct curl_slist* headers = c->slist_append(nullptr, "Content-Type: application/json");
  headers = c->slist_append(headers, fmt::format("User-Agent: berthlet/{}", BERTH_VERSION).c_str());
  if (!auth_header.empty()) headers = c->slist_append(headers, auth_header.c_str());
  std::string reply;
  c->easy_setopt(curl_, CURLOPT_URL, url.c_str());
  c->easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, config_.method.c_str());
  c->easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
  c->easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  c->easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_sink_request_options(c, curl_, config_.timeout, &aborted_);
  c->easy_setopt(curl_, CURLOPT_WRITEFUNCTION, keep_reply);
  c->easy_setopt(curl_, CURLOPT_WRITEDATA, &reply);
  if (!config_.ca_file.empty()) c->easy_setopt(curl_, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.client_cert_file.empty()) {
    c->easy_setopt(curl_, CURLOPT_SSLCERT, config_.client_cert_file.c_str());
    c->easy_setopt(curl_, CURLOPT_SSLKEY, config_.client_key_file.c_str());
  }
  CURLcode rc = c->easy_perform(curl_);
  long status = 0;
  c->easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  c->slist_free_all(headers);
  if (rc != CURLE_OK) return Delivery::retry(fmt::format("{} {}: {}", config_.method, url, c->easy_strerror(rc)));
  auto outcome = classify(status);
  if (outcome == Delivery::Outcome::delivered) return Delivery::ok();
  for (auto& ch : reply)
    if (static_cast<unsigned char>(ch) < ' ') ch = ' ';
  return {outcome, fmt::format("{} {}: HTTP {}{}{}", config_.method, url, status, reply.empty() ? "" : ": ", reply)};
}

Delivery HttpSink::deliver(const SinkItem& item) {
  auto body = envelope(item).dump();
  std::string errors;
  for (size_t n = 0; n < config_.urls.size() && !aborted_; n++) {
    size_t i = (preferred_ + n) % config_.urls.size();
    auto d = post(config_.urls[i], body);
    if (d.outcome != Delivery::Outcome::retry) {
      preferred_ = i;
      return d;
    }
    errors += (errors.empty() ? "" : "; ") + d.error;
  }
  return Delivery::retry(errors);
}

} // namespace berth::agent
