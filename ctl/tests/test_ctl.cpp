// berthctl's pure parts: the CRI log format, --since, crictl's units, strict config files
// and the WebSocket client's framing of what a server sends.
#include <gtest/gtest.h>

#include "ctl/lib/config_input.hpp"
#include "ctl/lib/logs.hpp"
#include "ctl/lib/output.hpp"
#include "ctl/lib/ws_client.hpp"

#include "api.pb.h"

namespace berth::ctl {
namespace {

TEST(LogLine, ParsesFullAndPartialLines) {
  auto l = parse_log_line("2024-01-02T03:04:05.123456789Z stdout F hello world");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->stream, "stdout");
  EXPECT_FALSE(l->partial);
  EXPECT_EQ(l->message, "hello world");
  EXPECT_EQ(l->time, 1704164645123456789);
  auto p = parse_log_line("2024-01-02T03:04:05Z stderr P ");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->partial);
  EXPECT_EQ(p->message, "");
  // An empty message without its separating space, and tags after P/F (F:x).
  EXPECT_TRUE(parse_log_line("2024-01-02T03:04:05Z stdout F"));
  EXPECT_TRUE(parse_log_line("2024-01-02T03:04:05Z stdout F:extra msg"));
}

TEST(LogLine, RefusesMalformedLines) {
  for (const char* bad : {"", "garbage", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z stdin F x",
                          "2024-01-02 stdout F x", "2024-01-02T03:04:05Z stdout  x", "2024-13-45T03:04:05Z stdout F x"})
    EXPECT_FALSE(parse_log_line(bad)) << bad;
}

TEST(Rfc3339, OffsetsAndFractions) {
  EXPECT_EQ(*parse_rfc3339("1970-01-01T00:00:01Z"), 1000000000);
  EXPECT_EQ(*parse_rfc3339("1970-01-01T01:00:01+01:00"), 1000000000);
  EXPECT_EQ(*parse_rfc3339("1970-01-01T00:00:00.5Z"), 500000000);
  EXPECT_EQ(*parse_rfc3339("1970-01-01T00:00:00.1234567899Z"), 123456789);  // past ns: cut
  EXPECT_FALSE(parse_rfc3339("1970-01-01T00:00:00."));
  EXPECT_FALSE(parse_rfc3339("1970-01-01T00:00:00Zjunk"));
  EXPECT_EQ(rfc3339(1000000005), "1970-01-01T00:00:01.000000005Z");
}

TEST(Since, DurationsAndTimes) {
  const int64_t now = 10000 * int64_t{1000000000};
  EXPECT_EQ(parse_since("10s", now), now - 10 * int64_t{1000000000});
  EXPECT_EQ(parse_since("1h30m", now), now - 5400 * int64_t{1000000000});
  EXPECT_EQ(parse_since("250ms", now), now - 250000000);
  EXPECT_EQ(parse_since("1970-01-01T00:00:01Z", now), 1000000000);
  for (const char* bad : {"", "10", "5x", "h", "-5s"}) EXPECT_THROW(parse_since(bad, now), std::invalid_argument) << bad;
}

TEST(Output, CrictlUnitsAndTables) {
  EXPECT_EQ(human_size(0), "0B");
  EXPECT_EQ(human_size(999), "999B");
  EXPECT_EQ(human_size(1065861), "1.07MB");
  EXPECT_EQ(human_size(8192), "8.19kB");
  EXPECT_EQ(short_id("sha256:0123456789abcdef"), "0123456789abc");
  Table t({"A", "LONGER"});
  t.add({"xxxxx", "y"});
  EXPECT_EQ(t.str(), "A       LONGER\nxxxxx   y\n");
  EXPECT_EQ(to_yaml({{"s", "123"}, {"n", 5}, {"b", "true"}, {"plain", "x"}}),
            "b: \"true\"\nn: 5\nplain: x\ns: \"123\"\n");
}

TEST(ConfigInput, JsonAndYamlWithEitherFieldSpelling) {
  runtime::v1::PodSandboxConfig a, b;
  parse_config(R"({"metadata": {"name": "p", "attempt": 2}, "logDirectory": "/l",
                  "linux": {"security_context": {"namespace_options": {"network": "NODE"}}}})", "a.json", a);
  parse_config("metadata:\n  name: p\n  attempt: 2\nlog_directory: /l\nlinux:\n  securityContext:\n"
               "    namespaceOptions:\n      network: NODE\n", "b.yaml", b);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(a.linux().security_context().namespace_options().network(), runtime::v1::NODE);
  // A quoted YAML number stays a string.
  runtime::v1::PodSandboxConfig c;
  parse_config("hostname: \"123\"\n", "c.yaml", c);
  EXPECT_EQ(c.hostname(), "123");
}

TEST(ConfigInput, ErrorsNameTheFileAndField) {
  runtime::v1::ContainerConfig c;
  try {
    parse_config("{\"metadata\": {\"nmae\": \"x\"}}", "c.json", c);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nmae"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_config("a: [", "d.yaml", c), std::runtime_error);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += std::string(static_cast<size_t>(i) * 2, ' ') + "k:\n";
  EXPECT_THROW(parse_config(deep, "deep.yaml", c), std::runtime_error);
}

TEST(WebSocket, ReadsServerFramesInAnyChunking) {
  // binary [1]"hi" in two fragments, a ping between them, then text "x" with a 16-bit length.
  std::string wire = std::string("\x02\x02\x01h", 4) + std::string("\x89\x00", 2) + std::string("\x80\x01i", 3);
  std::string big(300, 'x');
  wire += std::string("\x81\x7e\x01\x2c", 4) + big;
  for (size_t step : {size_t{1}, size_t{3}, wire.size()}) {
    ws::Reader r;
    std::vector<ws::Message> out;
    for (size_t i = 0; i < wire.size(); i += step) r.feed(std::string_view(wire).substr(i, step), out);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].opcode, ws::Opcode::ping);
    EXPECT_EQ(out[1].payload, std::string("\x01hi", 3));
    EXPECT_EQ(out[2].payload, big);
  }
}

TEST(WebSocket, RefusesMaskedOrOversizedServerFrames) {
  std::vector<ws::Message> out;
  ws::Reader masked;
  EXPECT_THROW(masked.feed(std::string("\x82\x81\x00\x00\x00\x00x", 7), out), std::runtime_error);
  ws::Reader small(10);
  EXPECT_THROW(small.feed(std::string("\x82\x0b", 2) + std::string(11, 'a'), out), std::runtime_error);
  ws::Reader cont;
  EXPECT_THROW(cont.feed(std::string("\x80\x00", 2), out), std::runtime_error);
}

TEST(WebSocket, ClientFramesAreMasked) {
  std::string out;
  ws::encode(out, ws::Opcode::binary, "abc");
  ASSERT_EQ(out.size(), 2u + 4 + 3);
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x82);
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 0x83);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(out[6 + i] ^ out[2 + i % 4], "abc"[i]);
}

} // namespace
} // namespace berth::ctl
