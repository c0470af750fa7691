#include "agent/lib/sinks/kube_client.hpp"

#include <cctype>

#include <fmt/format.h>

#include "agent/lib/curl_lazy.hpp"
#include "agent/lib/manifest.hpp"
#include "common/error.hpp"
#include "common/json.hpp"

namespace berth::agent {
namespace {

constexpr size_t kMaxTokenBytes = 16 << 10;

struct ReplyBuffer {
  std::string text;
  bool too_big = false;
};

size_t keep_reply(char* data, size_t size, size_t n, void* user) {
  auto* reply = static_cast<ReplyBuffer*>(user);
  size_t len = size * n;
  if (reply->text.size() + len > kMaxKubeReplyBytes) {
    reply->too_big = true;
    return 0; // ends the transfer (CURLE_WRITE_ERROR)
  }
  reply->text.append(data, len);
  return len;
}

// One line for the log: the Status message when there is one, else the start of the body.
std::string reply_summary(const KubeReply& r, const std::string& text) {
  std::string msg;
  if (r.body.is_object() && r.body.value("kind", "") == "Status") msg = r.body.value("message", "");
  else msg = text.substr(0, 200);
  for (auto& ch : msg)
    if (static_cast<unsigned char>(ch) < ' ') ch = ' ';
  return msg;
}

bool move_on(long status) { return status == 0 || status == 429 || status >= 500; }

} // namespace

std::string KubeReply::reason() const {
  return body.is_object() && body.value("kind", "") == "Status" && body.contains("reason") && body["reason"].is_string()
             ? body["reason"].get<std::string>()
             : "";
}

nlohmann::json parse_bounded_json(const std::string& text) {
  if (text.empty()) return nullptr;
  return parse_untrusted_json(text, "reply", kMaxKubeJsonDepth);
}

std::string url_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

KubeClient::KubeClient(KubeCredentials creds, std::chrono::milliseconds timeout)
    : creds_(std::move(creds)), timeout_(timeout) {
  if (creds_.servers.empty()) fail("no API server URL");
}

KubeClient::~KubeClient() {
  std::string error;
  if (curl_)
    if (const CurlApi* c = curl_api(error)) c->easy_cleanup(curl_);
}

KubeReply KubeClient::once(const std::string& url, const std::string& method, const std::string& body,
                           const char* content_type, const char* accept) {
  KubeReply r;
  const CurlApi* c = curl_api(r.error);
  if (!c) return r;
  if (!curl_ && !(curl_ = c->easy_init())) {
    r.error = "curl_easy_init failed";
    return r;
  }
  c->easy_reset(curl_);
  std::string token = creds_.token;
  try {
    if (!creds_.token_file.empty()) token = trim_trailing_space(read_bounded_file(creds_.token_file, kMaxTokenBytes));
  } catch (const std::exception& e) {
    r.error = e.what(); // a token file being replaced: the next try reads it again
    return r;
  }
  struct curl_slist* headers = c->slist_append(nullptr, fmt::format("Content-Type: {}", content_type).c_str());
  headers = c->slist_append(headers, fmt::format("Accept: {}", accept).c_str());
  headers = c->slist_append(headers, fmt::format("User-Agent: berthlet/{}", BERTH_VERSION).c_str());
  if (!token.empty()) headers = c->slist_append(headers, ("Authorization: Bearer " + token).c_str());
  ReplyBuffer reply;
  c->easy_setopt(curl_, CURLOPT_URL, url.c_str());
  c->easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty() || method != "GET") {
    c->easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
    c->easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  c->easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_sink_request_options(c, curl_, timeout_, &aborted_);
  c->easy_setopt(curl_, CURLOPT_WRITEFUNCTION, keep_reply);
  c->easy_setopt(curl_, CURLOPT_WRITEDATA, &reply);
  // PEM held in memory (a kubeconfig's -data keys) is passed as blobs: no temp files.
  auto blob = [](const std::string& pem) {
    return curl_blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  };
  curl_blob ca = blob(creds_.ca_data), cert = blob(creds_.cert_data), key = blob(creds_.key_data);
  if (!creds_.ca_data.empty()) c->easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &ca);
  else if (!creds_.ca_file.empty()) c->easy_setopt(curl_, CURLOPT_CAINFO, creds_.ca_file.c_str());
  if (!creds_.cert_data.empty()) {
    c->easy_setopt(curl_, CURLOPT_SSLCERTTYPE, "PEM");
    c->easy_setopt(curl_, CURLOPT_SSLCERT_BLOB, &cert);
  } else if (!creds_.cert_file.empty()) c->easy_setopt(curl_, CURLOPT_SSLCERT, creds_.cert_file.c_str());
  if (!creds_.key_data.empty()) {
    c->easy_setopt(curl_, CURLOPT_SSLKEYTYPE, "PEM");
    c->easy_setopt(curl_, CURLOPT_SSLKEY_BLOB, &key);
  } else if (!creds_.key_file.empty()) c->easy_setopt(curl_, CURLOPT_SSLKEY, creds_.key_file.c_str());
  if (creds_.insecure_skip_tls_verify) {
    c->easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
    c->easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  CURLcode rc = c->easy_perform(curl_);
  c->easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
  c->slist_free_all(headers);
  if (rc != CURLE_OK) {
    r.status = 0;
    r.error = reply.too_big ? fmt::format("{} {}: reply larger than {} bytes", method, url, kMaxKubeReplyBytes)
                            : fmt::format("{} {}: {}", method, url, c->easy_strerror(rc));
    return r;
  }
  try {
    r.body = parse_bounded_json(reply.text);
  } catch (const std::exception& e) {
    if (r.status >= 200 && r.status < 300) {
      r.error = fmt::format("{} {}: HTTP {}: {}", method, url, r.status, e.what());
      r.status = 0; // a 2xx we cannot read is no answer
      return r;
    }
  }
  if (!r.ok()) r.error = fmt::format("{} {}: HTTP {}: {}", method, url, r.status, reply_summary(r, reply.text));
  return r;
}

KubeReply KubeClient::call(const std::string& method, const std::string& path, const nlohmann::json& body,
                           const char* content_type, const char* accept) {
  auto text = body.is_null() ? std::string() : body.dump();
  std::string errors;
  KubeReply last;
  for (size_t n = 0; n < creds_.servers.size() && !aborted_; n++) {
    size_t i = (preferred_ + n) % creds_.servers.size();
    auto base = creds_.servers[i];
    while (!base.empty() && base.back() == '/') base.pop_back();
    last = once(base + path, method, text, content_type, accept);
    last.server = base;
    if (!move_on(last.status)) {
      preferred_ = i;
      return last;
    }
    errors += (errors.empty() ? "" : "; ") + last.error;
  }
  last.status = last.status >= 500 || last.status == 429 ? last.status : 0;
  last.error = aborted_ && errors.empty() ? "aborted" : errors;
  return last;
}

} // namespace berth::agent
