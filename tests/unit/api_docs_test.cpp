// docs/api.md's example bodies against the real wire code (include/eztinker/api_json.h), so the
// endpoint reference cannot drift from what the server parses and sends. The convention, stated
// at the top of docs/api.md:
//   - a ```json block right after a line `<!-- wire: TypeName [key=value ...] -->` is one body
//     of that wire type (a request is parsed with its parse_*_request, a response with
//     from_json; JobInfo may add result=TypeName for its "result" object; ErrorBody takes
//     status=N and goes through error_from_response / error_body_json);
//   - a `curl ... -d '<body>'` in a ```bash block is a request body whose type follows from the
//     path it is sent to.
// Each body must parse, and serializing the parsed struct must give back every field the
// example shows with the same value (the struct may add defaulted fields the example leaves
// out). Every ```json block must carry a marker, and every wire type must have an example.
#include "eztinker/api_json.h"
#include "eztinker/api_types.h"
#include "eztinker/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace eztinker::api {
namespace {

using nlohmann::json;

struct DocExample {
  std::string type;                          // wire type name, e.g. "SampleRequest"
  std::map<std::string, std::string> attrs;  // key=value pairs after the type
  std::string body;                          // JSON text
  int line = 0;                              // 1-based line in docs/api.md
  std::string query;                         // curl only: the query string of the URL
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The request type a curl body sent to `path` (no host, no query) must parse as.
std::string request_type_for_path(const std::string& path) {
  if (path == "/v1/runs") return "CreateRunRequest";
  if (path == "/v1/sample") return "SampleRequest";
  if (path == "/v1/tokenize") return "TokenizeRequest";
  if (path == "/v1/detokenize") return "DetokenizeRequest";
  if (starts_with(path, "/v1/runs/")) {
    if (ends_with(path, "/forward_backward") || ends_with(path, "/forward")) return "ForwardBackwardRequest";
    if (ends_with(path, "/optim_step")) return "AdamParams";
    if (ends_with(path, "/save")) return "SaveRequest";
    if (ends_with(path, "/load")) return "LoadRequest";
    if (ends_with(path, "/evaluate")) return "EvaluateRequest";
  }
  return "";
}

struct ParsedDoc {
  std::vector<DocExample> examples;
  std::vector<std::string> problems;  // convention violations (with line numbers)
};

// One curl command (continuation lines already joined) -> its -d body, if any.
void read_curl(const std::string& cmd, int line, ParsedDoc& doc) {
  const auto d = cmd.find(" -d '");
  if (cmd.find("curl") == std::string::npos || d == std::string::npos) return;
  const auto body_begin = d + 5;
  const auto body_end = cmd.find('\'', body_begin);
  if (body_end == std::string::npos) {
    doc.problems.push_back("line " + std::to_string(line) + ": unterminated -d '...' body");
    return;
  }
  const auto host = cmd.find("localhost:8000");
  if (host == std::string::npos) {
    doc.problems.push_back("line " + std::to_string(line) + ": curl with a body but no localhost:8000 URL");
    return;
  }
  const auto path_begin = host + std::string("localhost:8000").size();
  const auto path_end = cmd.find_first_of("?' ", path_begin);
  const std::string path = cmd.substr(path_begin, path_end - path_begin);
  DocExample ex;
  ex.type = request_type_for_path(path);
  ex.body = cmd.substr(body_begin, body_end - body_begin);
  ex.line = line;
  if (path_end != std::string::npos && cmd[path_end] == '?') {
    const auto q_end = cmd.find_first_of("' ", path_end);
    ex.query = cmd.substr(path_end + 1, q_end - path_end - 1);
  }
  if (ex.type.empty()) {
    doc.problems.push_back("line " + std::to_string(line) + ": curl body sent to " + path +
                           ", which has no known request type");
    return;
  }
  doc.examples.push_back(std::move(ex));
}

ParsedDoc parse_api_md(const std::string& text) {
  ParsedDoc doc;
  std::istringstream in(text);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);

  std::optional<DocExample> pending;  // a marker waiting for its ```json block
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim(lines[i]);
    const int line_no = int(i) + 1;
    if (starts_with(t, "<!-- wire:")) {
      if (pending) doc.problems.push_back("line " + std::to_string(pending->line) + ": marker without a ```json block");
      const auto end = t.find("-->");
      std::istringstream words(t.substr(10, end == std::string::npos ? std::string::npos : end - 10));
      DocExample ex;
      ex.line = line_no;
      words >> ex.type;
      for (std::string w; words >> w;) {
        const auto eq = w.find('=');
        if (eq == std::string::npos) {
          doc.problems.push_back("line " + std::to_string(line_no) + ": marker attribute '" + w + "' is not key=value");
        } else {
          ex.attrs[w.substr(0, eq)] = w.substr(eq + 1);
        }
      }
      pending = std::move(ex);
      continue;
    }
    if (!starts_with(t, "```") || t == "```") {
      if (pending && !t.empty()) {
        doc.problems.push_back("line " + std::to_string(pending->line) + ": marker not followed by a ```json block");
        pending.reset();
      }
      continue;
    }
    // An opening fence: collect the block up to the closing one.
    const std::string lang = t.substr(3);
    std::vector<std::string> block;
    size_t j = i + 1;
    for (; j < lines.size() && trim(lines[j]) != "```"; ++j) block.push_back(lines[j]);
    if (lang == "json") {
      if (!pending) {
        doc.problems.push_back("line " + std::to_string(line_no) + ": ```json block without a <!-- wire: Type --> marker");
      } else {
        for (const auto& b : block) pending->body += b + "\n";
        doc.examples.push_back(std::move(*pending));
      }
    } else {
      if (pending) doc.problems.push_back("line " + std::to_string(pending->line) + ": marker followed by a ```" + lang + " block");
      if (lang == "bash") {
        std::string cmd;
        int cmd_line = 0;
        for (size_t k = 0; k < block.size(); ++k) {
          std::string l = block[k];
          if (cmd.empty()) cmd_line = int(i + 2 + k);
          const bool continued = !l.empty() && l.back() == '\\';
          if (continued) l.pop_back();
          cmd += l + " ";
          if (!continued) {
            read_curl(cmd, cmd_line, doc);
            cmd.clear();
          }
        }
        if (!cmd.empty()) read_curl(cmd, cmd_line, doc);
      }
    }
    pending.reset();
    i = j;
  }
  if (pending) doc.problems.push_back("line " + std::to_string(pending->line) + ": marker at the end of the file");
  return doc;
}

// Every field of `want` is in `got` with the same value (numbers compared as doubles, with the
// float precision of the per-token lists); `got` may hold more object members.
void expect_shown_fields(const json& want, const json& got, const std::string& at,
                         std::vector<std::string>& diffs) {
  if (want.is_object()) {
    if (!got.is_object()) {
      diffs.push_back(at + ": expected an object, got " + got.dump());
      return;
    }
    for (const auto& [key, value] : want.items()) {
      if (!got.contains(key)) {
        diffs.push_back(at + "." + key + ": missing after re-serialization");
      } else {
        expect_shown_fields(value, got.at(key), at + "." + key, diffs);
      }
    }
  } else if (want.is_array()) {
    if (!got.is_array() || got.size() != want.size()) {
      diffs.push_back(at + ": expected " + want.dump() + ", got " + got.dump());
      return;
    }
    for (size_t i = 0; i < want.size(); ++i) {
      expect_shown_fields(want[i], got[i], at + "[" + std::to_string(i) + "]", diffs);
    }
  } else if (want.is_number()) {
    const double w = want.get<double>();
    if (!got.is_number() || std::abs(got.get<double>() - w) > 1e-6 * std::max(1.0, std::abs(w))) {
      diffs.push_back(at + ": expected " + want.dump() + ", got " + got.dump());
    }
  } else if (want != got) {
    diffs.push_back(at + ": expected " + want.dump() + ", got " + got.dump());
  }
}

template <typename T>
json via_from_json(const json& j) {
  return json(j.get<T>());
}

using Reserializer = std::function<json(const json&, const DocExample&)>;

// Wire type name -> parse the example, return the struct serialized again.
const std::map<std::string, Reserializer>& reserializers() {
  static const std::map<std::string, Reserializer> table = [] {
    std::map<std::string, Reserializer> t;
    // Requests: the server's parse + validation.
    t["CreateRunRequest"] = [](const json& j, const DocExample&) { return json(parse_create_run_request(j)); };
    t["ForwardBackwardRequest"] = [](const json& j, const DocExample&) { return json(parse_forward_backward_request(j)); };
    t["AdamParams"] = [](const json& j, const DocExample&) { return json(parse_optim_step_request(j)); };
    t["SampleRequest"] = [](const json& j, const DocExample&) { return json(parse_sample_request(j)); };
    t["SaveRequest"] = [](const json& j, const DocExample& ex) {
      std::optional<std::string> name;
      if (starts_with(ex.query, "name=")) name = ex.query.substr(5, ex.query.find('&') - 5);
      return json(parse_save_request(j, name));
    };
    t["LoadRequest"] = [](const json& j, const DocExample&) { return json(parse_load_request(j)); };
    t["EvaluateRequest"] = [](const json& j, const DocExample&) { return json(parse_evaluate_request(j)); };
    t["TokenizeRequest"] = [](const json& j, const DocExample&) { return json(parse_tokenize_request(j)); };
    t["DetokenizeRequest"] = [](const json& j, const DocExample&) { return json(parse_detokenize_request(j)); };
    // Responses and job results: what the client's from_json reads.
    t["Health"] = [](const json& j, const DocExample&) { return via_from_json<Health>(j); };
    t["Version"] = [](const json& j, const DocExample&) { return via_from_json<Version>(j); };
    t["Status"] = [](const json& j, const DocExample&) { return via_from_json<Status>(j); };
    t["CreateRunResponse"] = [](const json& j, const DocExample&) { return via_from_json<CreateRunResponse>(j); };
    t["ListRunsResponse"] = [](const json& j, const DocExample&) { return via_from_json<ListRunsResponse>(j); };
    t["RunInfo"] = [](const json& j, const DocExample&) { return via_from_json<RunInfo>(j); };
    t["DeleteRunResponse"] = [](const json& j, const DocExample&) { return via_from_json<DeleteRunResponse>(j); };
    t["ForwardBackwardResult"] = [](const json& j, const DocExample&) { return via_from_json<ForwardBackwardResult>(j); };
    t["OptimStepResult"] = [](const json& j, const DocExample&) { return via_from_json<OptimStepResult>(j); };
    t["SampleResult"] = [](const json& j, const DocExample&) { return via_from_json<SampleResult>(j); };
    t["SaveResult"] = [](const json& j, const DocExample&) { return via_from_json<SaveResult>(j); };
    t["LoadResult"] = [](const json& j, const DocExample&) { return via_from_json<LoadResult>(j); };
    t["ListCheckpointsResponse"] = [](const json& j, const DocExample&) { return via_from_json<ListCheckpointsResponse>(j); };
    t["DeleteCheckpointResponse"] = [](const json& j, const DocExample&) { return via_from_json<DeleteCheckpointResponse>(j); };
    t["EvaluateResult"] = [](const json& j, const DocExample&) { return via_from_json<EvaluateResult>(j); };
    t["TokenizeResponse"] = [](const json& j, const DocExample&) { return via_from_json<TokenizeResponse>(j); };
    t["DetokenizeResponse"] = [](const json& j, const DocExample&) { return via_from_json<DetokenizeResponse>(j); };
    t["ListJobsResponse"] = [](const json& j, const DocExample&) { return via_from_json<ListJobsResponse>(j); };
    t["JobInfo"] = [](const json& j, const DocExample& ex) {
      JobInfo job = j.get<JobInfo>();
      json out = job;
      // result=Type: the result object must also read as that job result type.
      if (auto it = ex.attrs.find("result"); it != ex.attrs.end()) {
        const auto& table = reserializers();
        auto r = table.find(it->second);
        if (r == table.end()) throw std::runtime_error("unknown result type " + it->second);
        if (!job.result_json) throw std::runtime_error("result=" + it->second + " but the job has no result");
        out["result"] = r->second(json::parse(*job.result_json), ex);
      }
      return out;
    };
    // A FastAPI error body: what the client makes of it, and what the server would send back.
    t["ErrorBody"] = [](const json& j, const DocExample& ex) {
      auto it = ex.attrs.find("status");
      if (it == ex.attrs.end()) throw std::runtime_error("ErrorBody needs status=N");
      const int status = std::stoi(it->second);
      ApiError error = error_from_response(status, j.dump());
      if (error.http_status() != status) {
        throw std::runtime_error("status " + it->second + " maps to " + std::to_string(error.http_status()));
      }
      return json::parse(error_body_json(error));
    };
    return t;
  }();
  return table;
}

ParsedDoc load_doc() {
  return parse_api_md(testing::read_file(testing::source_dir() / "docs" / "api.md"));
}

TEST(ApiDocs, FollowsTheExampleConvention) {
  const ParsedDoc doc = load_doc();
  for (const auto& p : doc.problems) ADD_FAILURE() << "docs/api.md " << p;
  EXPECT_GE(doc.examples.size(), 30u);
}

TEST(ApiDocs, EveryExampleParsesAndReserializesItsFields) {
  const ParsedDoc doc = load_doc();
  const auto& table = reserializers();
  for (const DocExample& ex : doc.examples) {
    SCOPED_TRACE("docs/api.md line " + std::to_string(ex.line) + " (" + ex.type + ")");
    auto it = table.find(ex.type);
    if (it == table.end()) {
      ADD_FAILURE() << "unknown wire type '" << ex.type << "'";
      continue;
    }
    json body;
    try {
      body = json::parse(ex.body);
    } catch (const json::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << ex.body;
      continue;
    }
    json again;
    try {
      again = it->second(body, ex);
    } catch (const ApiError& e) {
      ADD_FAILURE() << "rejected: " << e.message() << " " << e.detail_json() << "\n" << ex.body;
      continue;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "does not parse: " << e.what() << "\n" << ex.body;
      continue;
    }
    std::vector<std::string> diffs;
    expect_shown_fields(body, again, "$", diffs);
    for (const auto& d : diffs) ADD_FAILURE() << d << "\n  example: " << body.dump() << "\n  again:   " << again.dump();
  }
}

TEST(ApiDocs, EveryWireTypeHasAnExample) {
  const ParsedDoc doc = load_doc();
  std::set<std::string> shown;
  for (const auto& ex : doc.examples) {
    shown.insert(ex.type);
    if (auto r = ex.attrs.find("result"); r != ex.attrs.end()) shown.insert(r->second);
  }
  for (const auto& [type, fn] : reserializers()) {
    EXPECT_TRUE(shown.count(type)) << "docs/api.md has no example of " << type;
  }
}

// The checker itself: a wrong value, a missing field and an unmarked block are all caught.
TEST(ApiDocs, CheckerCatchesDrift) {
  std::vector<std::string> diffs;
  expect_shown_fields(json::parse(R"({"r":4,"x":[1,2]})"), json::parse(R"({"r":5,"x":[1,2]})"), "$", diffs);
  expect_shown_fields(json::parse(R"({"gone":1})"), json::parse(R"({})"), "$", diffs);
  expect_shown_fields(json::parse(R"({"lp":[-0.5]})"), json::parse(R"({"lp":[-0.5000000001]})"), "$", diffs);
  EXPECT_EQ(diffs.size(), 2u);

  const ParsedDoc doc = parse_api_md(
      "```json\n{}\n```\n"
      "<!-- wire: Health -->\n```json\n{\"status\":\"ok\"}\n```\n"
      "```bash\ncurl -XPOST localhost:8000/v1/runs/r/optim_step \\\n  -d '{\"learning_rate\":1e-4}'\n"
      "curl -XPOST localhost:8000/v1/nowhere -d '{}'\n```\n");
  ASSERT_EQ(doc.examples.size(), 2u);
  EXPECT_EQ(doc.examples[0].type, "Health");
  EXPECT_EQ(doc.examples[1].type, "AdamParams");
  EXPECT_EQ(doc.examples[1].body, R"({"learning_rate":1e-4})");
  EXPECT_EQ(doc.problems.size(), 2u);  // the unmarked block, the unknown path
}

}  // namespace
}  // namespace eztinker::api
