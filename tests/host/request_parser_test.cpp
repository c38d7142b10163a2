// Framing of the control protocol, and command lookup.
#include <boost/test/unit_test.hpp>

#include "command_registry.hpp"
#include "request_parser.hpp"

using namespace xdpfw::host;

BOOST_AUTO_TEST_SUITE(request_parser)

BOOST_AUTO_TEST_CASE(lines_split_across_reads) {
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  BOOST_TEST(!p.feed("he", out));
  BOOST_TEST(out.empty());
  BOOST_TEST(!p.feed("lp\r\nversion\n\n  \nsh", out));
  BOOST_TEST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[0].line == "help");  // CR stripped
  BOOST_TEST(out[1].line == "version");
  BOOST_TEST(!out[1].payload);
  BOOST_TEST(p.partial());
  auto last = p.finish();  // input ended without a newline
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST(last->line == "sh");
}

BOOST_AUTO_TEST_CASE(payload_until_empty_line) {
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  BOOST_TEST(!p.feed("rule batch <<\nline one\nline two\r\n\nhelp\n", out));
  BOOST_TEST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[0].line == "rule batch");
  BOOST_TEST(*out[0].payload == "line one\nline two\n");
  BOOST_TEST(out[1].line == "help");
}

BOOST_AUTO_TEST_CASE(tagged_payload_keeps_empty_lines) {
  // A rules file with comments and blank lines goes through whole.
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  BOOST_TEST(!p.feed("rule replace <<END\n# comment\n\nproto tcp action drop\n  \nEN\n", out));
  BOOST_TEST(out.empty());
  BOOST_TEST(!p.feed(" END \nhelp\nx <<\na\n\n", out));
  BOOST_TEST_REQUIRE(out.size() == 3u);
  BOOST_TEST(out[0].line == "rule replace");
  BOOST_TEST(*out[0].payload == "# comment\n\nproto tcp action drop\n  \nEN\n");
  BOOST_TEST(!out[0].error);
  BOOST_TEST(out[1].line == "help");
  BOOST_TEST(*out[2].payload == "a\n");  // untagged: up to the empty line, as before
}

BOOST_AUTO_TEST_CASE(tagged_payload_cut_off_is_an_error) {
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  BOOST_TEST(!p.feed("rule replace <<EOF\nproto tcp action drop\n", out));
  auto last = p.finish();
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST_REQUIRE(last->error.has_value());
  BOOST_TEST(*last->error ==
             "rule replace: the payload ended before its end line 'EOF': nothing was applied");
}

BOOST_AUTO_TEST_CASE(open_payload_cut_off_is_an_error) {
  // A bare "<<" payload cut by the end of input is refused like a tagged
  // one: "rule replace <<" and one line of a file must not replace the set.
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  BOOST_TEST(!p.feed("rule replace <<\nproto tcp action drop\n", out));
  BOOST_TEST(out.empty());
  auto last = p.finish();
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST_REQUIRE(last->error.has_value());
  BOOST_TEST(*last->error ==
             "rule replace: the payload ended before its end (an empty line): nothing was "
             "applied");
}

BOOST_AUTO_TEST_CASE(a_nul_byte_refuses_its_line_or_payload) {
  RequestParser p(1024, 1024);
  std::vector<Request> out;
  using namespace std::string_literals;
  BOOST_TEST(!p.feed("rule add src 198.18.0.5 action drop\0 prio 1\nversion\n"s, out));
  BOOST_TEST_REQUIRE(out.size() == 2u);
  BOOST_TEST_REQUIRE(out[0].error.has_value());
  BOOST_TEST(*out[0].error ==
             "the request line holds a NUL byte (after 'rule add src 198.18.0.5 action drop'): "
             "refused, nothing was run");
  BOOST_TEST(out[0].line.find('\0') == std::string::npos);
  BOOST_TEST(!out[1].error);  // the next line is served
  BOOST_TEST(!p.feed("rule replace <<E\nproto tcp action drop\nx\0y\nE\n"s, out));
  BOOST_TEST_REQUIRE(out.size() == 3u);
  BOOST_TEST_REQUIRE(out[2].error.has_value());
  BOOST_TEST(*out[2].error ==
             "rule replace: payload line 2 holds a NUL byte: refused, nothing was applied");
}

BOOST_AUTO_TEST_CASE(limits) {
  RequestParser p(8, 10);
  std::vector<Request> out;
  BOOST_TEST(*p.feed("123456789", out) == "line longer than 8 bytes");
  RequestParser q(8, 10);
  BOOST_TEST(!q.feed("x <<\n12345\n", out));
  BOOST_TEST(*q.feed("12345\n", out) == "payload larger than 10 bytes");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(command_registry)

BOOST_AUTO_TEST_CASE(longest_name_wins) {
  CommandRegistry r;
  auto fn = [](std::string_view, const std::string*) { return CommandResult{}; };
  r.add(0, "show", "", false, fn);
  r.add(0, "show plugins", "", false, fn);
  auto f = r.find("show   plugins json");
  BOOST_TEST_REQUIRE(f.has_value());
  BOOST_TEST(f->first->name() == "show plugins");
  BOOST_TEST(f->second == "json");
  f = r.find("show pluginsx");
  BOOST_TEST(f->first->name() == "show");
  BOOST_TEST(f->second == "pluginsx");
  BOOST_TEST(!r.find("sho").has_value());
  BOOST_CHECK_THROW(r.add(1, "show  plugins", "", false, fn), std::invalid_argument);
  BOOST_CHECK_THROW(r.add(1, "  ", "", false, fn), std::invalid_argument);
  r.add(7, "echo", "", false, fn);
  r.remove_owner(7);
  BOOST_TEST(!r.find("echo").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
