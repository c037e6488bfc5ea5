// JSON <-> struct conversions for include/eztinker/api_types.h and the request validation the
// server runs before enqueueing (the ONLY JSON<->struct code). Validation mirrors FastAPI +
// pydantic v2: every bad field is reported in one 422 list, with pydantic's messages and type
// names ("Field required"/"missing", "Input should be a valid integer"/"int_type", ...);
// cross-field rules (lengths that disagree, exactly-one-of) are "value_error"s.
#include "eztinker/api_json.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <utility>

namespace eztinker::api {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Job status wire strings (the only place they are spelled).
// ---------------------------------------------------------------------------------------------

std::string_view to_string(JobStatus status) {
  switch (status) {
    case JobStatus::kQueued: return "queued";
    case JobStatus::kRunning: return "running";
    case JobStatus::kCompleted: return "completed";
    case JobStatus::kFailed: return "failed";
    case JobStatus::kCancelled: return "cancelled";
  }
  return "failed";
}

std::optional<JobStatus> job_status_from_string(std::string_view text) {
  for (JobStatus s : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kCompleted,
                      JobStatus::kFailed, JobStatus::kCancelled}) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

void to_json(json& j, JobStatus status) { j = std::string(to_string(status)); }

void from_json(const json& j, JobStatus& status) {
  auto parsed = job_status_from_string(j.get<std::string>());
  if (!parsed) throw json::type_error::create(302, "unknown job status " + j.dump(), &j);
  status = *parsed;
}

// ---------------------------------------------------------------------------------------------
// Validation machinery
// ---------------------------------------------------------------------------------------------
namespace {

using Loc = std::vector<json>;  // "body", "examples", 0, "input_ids", ...

Loc operator+(Loc loc, json part) {
  loc.push_back(std::move(part));
  return loc;
}

// "%g" without a trailing ".0" noise: 1 -> "1", 0.5 -> "0.5", 2e-4 -> "0.0002".
std::string fmt_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string loc_text(const Loc& loc) {
  std::string out;
  for (const auto& part : loc) {
    std::string piece = part.is_string() ? part.get<std::string>() : part.dump();
    if (out.empty() && (piece == "body" || piece == "query" || piece == "path")) continue;
    if (!out.empty()) out += ".";
    out += piece;
  }
  return out.empty() ? "body" : out;
}

// Collects FastAPI detail entries; throws them as one ApiError.
class Checker {
 public:
  // Caps the list so a 100k-token array of strings does not produce a 100k-entry reply.
  static constexpr size_t kMaxErrors = 20;

  void fail(const Loc& loc, std::string msg, std::string type) {
    if (errors_.size() >= kMaxErrors) return;
    summary_ += (summary_.empty() ? "" : "; ") + loc_text(loc) + ": " + msg;
    errors_.push_back({{"loc", loc}, {"msg", std::move(msg)}, {"type", std::move(type)}});
  }
  void value_error(const Loc& loc, const std::string& msg) {
    fail(loc, "Value error, " + msg, "value_error");
  }
  void missing(const Loc& loc) { fail(loc, "Field required", "missing"); }
  bool ok() const { return errors_.empty(); }
  size_t count() const { return errors_.size(); }

  void throw_if_failed() const {
    if (!errors_.empty()) throw ApiError::validation(summary_, errors_.dump());
  }

 private:
  json errors_ = json::array();
  std::string summary_;
};

// The field `key` of `obj`, or nullptr when absent or null (null = absent for optional fields,
// like pydantic's Optional[...] = None).
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// --- scalar readers: record a type error and return nullopt when `v` has the wrong type. ---

std::optional<int64_t> as_int(Checker& c, const json& v, const Loc& loc) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      c.fail(loc, "Input should be a valid integer, unable to parse number as an integer",
             "int_parsing_size");
      return std::nullopt;
    }
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return int64_t(d);
    c.fail(loc, "Input should be a valid integer, got a number with a fractional part",
           "int_from_float");
    return std::nullopt;
  }
  if (v.is_boolean()) {
    c.fail(loc, "Input should be a valid integer, got a boolean", "int_type");
    return std::nullopt;
  }
  c.fail(loc, "Input should be a valid integer", "int_type");
  return std::nullopt;
}

std::optional<double> as_number(Checker& c, const json& v, const Loc& loc) {
  if (v.is_number()) {
    double d = v.get<double>();
    if (!std::isfinite(d)) {
      c.fail(loc, "Input should be a finite number", "finite_number");
      return std::nullopt;
    }
    return d;
  }
  c.fail(loc, "Input should be a valid number", "float_type");
  return std::nullopt;
}

std::optional<bool> as_bool(Checker& c, const json& v, const Loc& loc) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) {
    return v.get<int64_t>() == 1;  // pydantic's lax mode accepts 0/1
  }
  c.fail(loc, "Input should be a valid boolean", "bool_type");
  return std::nullopt;
}

std::optional<std::string> as_string(Checker& c, const json& v, const Loc& loc) {
  if (v.is_string()) return v.get<std::string>();
  c.fail(loc, "Input should be a valid string", "string_type");
  return std::nullopt;
}

bool is_list(Checker& c, const json& v, const Loc& loc) {
  if (v.is_array()) return true;
  c.fail(loc, "Input should be a valid list", "list_type");
  return false;
}

bool is_object(Checker& c, const json& v, const Loc& loc) {
  if (v.is_object()) return true;
  c.fail(loc, "Input should be a valid dictionary or object to extract fields from",
         "model_attributes_type");
  return false;
}

// --- range checks (pydantic's wording) ---

template <typename T>
bool check_ge(Checker& c, const Loc& loc, T v, double bound) {
  if (double(v) >= bound) return true;
  c.fail(loc, "Input should be greater than or equal to " + fmt_number(bound),
         "greater_than_equal");
  return false;
}
template <typename T>
bool check_gt(Checker& c, const Loc& loc, T v, double bound) {
  if (double(v) > bound) return true;
  c.fail(loc, "Input should be greater than " + fmt_number(bound), "greater_than");
  return false;
}
template <typename T>
bool check_le(Checker& c, const Loc& loc, T v, double bound) {
  if (double(v) <= bound) return true;
  c.fail(loc, "Input should be less than or equal to " + fmt_number(bound), "less_than_equal");
  return false;
}
template <typename T>
bool check_lt(Checker& c, const Loc& loc, T v, double bound) {
  if (double(v) < bound) return true;
  c.fail(loc, "Input should be less than " + fmt_number(bound), "less_than");
  return false;
}

bool check_literal(Checker& c, const Loc& loc, const std::string& v,
                   std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return true;
  }
  // pydantic: "Input should be 'mean' or 'sum'" / "'a', 'b' or 'c'".
  std::string msg = "Input should be ";
  size_t i = 0;
  for (const char* a : allowed) {
    if (i > 0) msg += (i + 1 == allowed.size()) ? " or " : ", ";
    msg += "'" + std::string(a) + "'";
    ++i;
  }
  c.fail(loc, msg, "literal_error");
  return false;
}

// --- field readers: absent/null leaves `out` (the default) untouched ---

struct Range {
  std::optional<double> ge, gt, le, lt;
};

Range range_ge(double v) { Range r; r.ge = v; return r; }
Range range_gt(double v) { Range r; r.gt = v; return r; }
Range range_ge_le(double lo, double hi) { Range r; r.ge = lo; r.le = hi; return r; }
Range range_gt_le(double lo, double hi) { Range r; r.gt = lo; r.le = hi; return r; }

bool in_range(Checker& c, const Loc& loc, double v, const Range& r) {
  bool ok = true;
  if (r.ge) ok = check_ge(c, loc, v, *r.ge) && ok;
  if (r.gt) ok = check_gt(c, loc, v, *r.gt) && ok;
  if (r.le) ok = check_le(c, loc, v, *r.le) && ok;
  if (r.lt) ok = check_lt(c, loc, v, *r.lt) && ok;
  return ok;
}

template <typename Int>
void read_int(Checker& c, const json& obj, const Loc& loc, const char* key, Int& out,
              Range range = {}) {
  const json* v = field(obj, key);
  if (!v) return;
  auto value = as_int(c, *v, loc + key);
  if (!value) return;
  if (!in_range(c, loc + key, double(*value), range)) return;
  if (*value < int64_t(std::numeric_limits<Int>::min()) ||
      (*value > 0 && uint64_t(*value) > uint64_t(std::numeric_limits<Int>::max()))) {
    c.fail(loc + key, "Input should be between " + std::to_string(std::numeric_limits<Int>::min()) +
                          " and " + std::to_string(std::numeric_limits<Int>::max()),
           "int_parsing_size");
    return;
  }
  out = Int(*value);
}

void read_number(Checker& c, const json& obj, const Loc& loc, const char* key, double& out,
                 Range range = {}) {
  const json* v = field(obj, key);
  if (!v) return;
  auto value = as_number(c, *v, loc + key);
  if (value && in_range(c, loc + key, *value, range)) out = *value;
}

void read_bool(Checker& c, const json& obj, const Loc& loc, const char* key, bool& out) {
  const json* v = field(obj, key);
  if (!v) return;
  if (auto value = as_bool(c, *v, loc + key)) out = *value;
}

void read_string(Checker& c, const json& obj, const Loc& loc, const char* key, std::string& out) {
  const json* v = field(obj, key);
  if (!v) return;
  if (auto value = as_string(c, *v, loc + key)) out = *value;
}

void read_opt_string(Checker& c, const json& obj, const Loc& loc, const char* key,
                     std::optional<std::string>& out) {
  const json* v = field(obj, key);
  if (!v) return;
  out = as_string(c, *v, loc + key);
}

// A required string field: missing -> "Field required".
void require_string(Checker& c, const json& obj, const Loc& loc, const char* key,
                    std::string& out) {
  if (!field(obj, key)) {
    c.missing(loc + key);
    return;
  }
  read_string(c, obj, loc, key, out);
}

// A list of token ids (int32). `min_value` = 0 for input ids; target ids may be negative
// (ignore_index).
std::optional<TokenIds> read_token_list(Checker& c, const json& v, const Loc& loc,
                                        std::optional<int64_t> min_value) {
  if (!is_list(c, v, loc)) return std::nullopt;
  TokenIds out;
  out.reserve(v.size());
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    Loc at = loc + json(i);
    auto id = as_int(c, v[i], at);
    if (!id) {
      ok = false;
      if (c.count() >= Checker::kMaxErrors) break;
      continue;
    }
    if (min_value && *id < *min_value) {
      check_ge(c, at, *id, double(*min_value));
      ok = false;
      continue;
    }
    if (*id < std::numeric_limits<int32_t>::min() || *id > std::numeric_limits<int32_t>::max()) {
      c.fail(at, "Input should be a valid token id (32-bit integer)", "int_parsing_size");
      ok = false;
      continue;
    }
    out.push_back(int32_t(*id));
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<float>> read_float_list(Checker& c, const json& v, const Loc& loc,
                                                  std::optional<double> min_value) {
  if (!is_list(c, v, loc)) return std::nullopt;
  std::vector<float> out;
  out.reserve(v.size());
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    auto x = as_number(c, v[i], loc + json(i));
    if (!x || (min_value && !check_ge(c, loc + json(i), *x, *min_value))) {
      ok = false;
      if (c.count() >= Checker::kMaxErrors) break;
      continue;
    }
    out.push_back(float(*x));
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> read_string_list(Checker& c, const json& v, const Loc& loc,
                                                         bool non_empty_items) {
  if (!is_list(c, v, loc)) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    auto s = as_string(c, v[i], loc + json(i));
    if (!s) {
      ok = false;
      continue;
    }
    if (non_empty_items && s->empty()) {
      c.fail(loc + json(i), "String should have at least 1 character", "string_too_short");
      ok = false;
      continue;
    }
    out.push_back(std::move(*s));
  }
  if (!ok) return std::nullopt;
  return out;
}

void check_same_length(Checker& c, const Loc& loc, const char* name, size_t got, size_t expected) {
  if (got == expected) return;
  c.value_error(loc, std::string("`") + name + "` has " + std::to_string(got) +
                         " entries, expected " + std::to_string(expected) +
                         " (one per input_ids entry)");
}

// The body must be an object; anything else stops validation at once.
void require_object_body(const json& body) {
  Checker c;
  if (body.is_null()) {
    c.missing({"body"});
  } else {
    is_object(c, body, {"body"});
  }
  c.throw_if_failed();
}

void check_name(Checker& c, std::string_view name, const Loc& loc) {
  if (name.empty()) {
    c.fail(loc, "String should have at least 1 character", "string_too_short");
    return;
  }
  if (name.size() > kMaxNameLength) {
    c.fail(loc, "String should have at most " + std::to_string(kMaxNameLength) + " characters",
           "string_too_long");
    return;
  }
  bool control = false;
  for (unsigned char ch : name) control = control || ch < 0x20 || ch == 0x7f;
  if (name.find('/') != std::string_view::npos || name.find('\\') != std::string_view::npos ||
      name.find("..") != std::string_view::npos || control || name == ".") {
    c.value_error(loc, "invalid name '" + std::string(name) +
                           "': expected a plain name without '/', '\\', '..' or control "
                           "characters");
  }
}

// --- nested objects ---

LoraConfig read_lora_config(Checker& c, const json& obj, const Loc& loc) {
  LoraConfig out;
  if (!is_object(c, obj, loc)) return out;
  read_int(c, obj, loc, "r", out.r, range_ge(1));
  read_int(c, obj, loc, "lora_alpha", out.lora_alpha, range_ge(1));
  read_number(c, obj, loc, "lora_dropout", out.lora_dropout, range_ge_le(0, 1));
  if (const json* t = field(obj, "target_modules")) {
    Loc at = loc + "target_modules";
    if (t->is_string()) {
      if (t->get<std::string>() != "all-linear") {
        c.fail(at, "Input should be 'all-linear' or a list of module names", "literal_error");
      }
    } else if (t->is_array()) {
      if (t->empty()) {
        c.fail(at, "List should have at least 1 item after validation, not 0", "too_short");
      } else if (auto names = read_string_list(c, *t, at, true)) {
        out.target_modules = std::move(*names);
      }
    } else {
      c.fail(at, "Input should be 'all-linear' or a list of module names", "literal_error");
    }
  }
  read_bool(c, obj, loc, "use_rslora", out.use_rslora);
  return out;
}

LossConfig read_loss_config(Checker& c, const json& obj, const Loc& loc) {
  LossConfig out;
  if (!is_object(c, obj, loc)) return out;
  read_string(c, obj, loc, "loss_type", out.loss_type);
  check_literal(c, loc + "loss_type", out.loss_type,
                {"cross_entropy", "weighted_cross_entropy", "focal_loss"});
  read_int(c, obj, loc, "ignore_index", out.ignore_index);
  read_number(c, obj, loc, "focal_alpha", out.focal_alpha, range_ge_le(0, 1));
  read_number(c, obj, loc, "focal_gamma", out.focal_gamma, range_ge(0));
  read_string(c, obj, loc, "reduction", out.reduction);
  check_literal(c, loc + "reduction", out.reduction, {"mean", "sum"});
  return out;
}

// A Datum at `loc` (the body itself for the single form, or examples[i]).
Datum read_datum(Checker& c, const json& obj, const Loc& loc) {
  Datum d;
  if (!is_object(c, obj, loc)) return d;
  const json* ids = field(obj, "input_ids");
  if (!ids) {
    c.missing(loc + "input_ids");
  } else if (auto v = read_token_list(c, *ids, loc + "input_ids", 0)) {
    if (v->empty()) {
      c.fail(loc + "input_ids", "List should have at least 1 item after validation, not 0",
             "too_short");
    }
    d.input_ids = std::move(*v);
  }
  const size_t n = d.input_ids.size();
  const bool have_ids = n > 0;
  if (const json* t = field(obj, "target_ids")) {
    d.target_ids = read_token_list(c, *t, loc + "target_ids", std::nullopt);
    if (d.target_ids && have_ids) check_same_length(c, loc + "target_ids", "target_ids", d.target_ids->size(), n);
  }
  if (const json* w = field(obj, "weights")) {
    d.weights = read_float_list(c, *w, loc + "weights", 0.0);
    if (d.weights && have_ids) check_same_length(c, loc + "weights", "weights", d.weights->size(), n);
  }
  if (const json* a = field(obj, "advantages")) {
    d.advantages = read_float_list(c, *a, loc + "advantages", std::nullopt);
    if (d.advantages && have_ids) check_same_length(c, loc + "advantages", "advantages", d.advantages->size(), n);
  }
  if (const json* l = field(obj, "logprobs")) {
    d.logprobs = read_float_list(c, *l, loc + "logprobs", std::nullopt);
    if (d.logprobs && have_ids) check_same_length(c, loc + "logprobs", "logprobs", d.logprobs->size(), n);
  }
  return d;
}

std::vector<ChatMessage> read_messages(Checker& c, const json& v, const Loc& loc) {
  std::vector<ChatMessage> out;
  if (!is_list(c, v, loc)) return out;
  if (v.empty()) {
    c.fail(loc, "List should have at least 1 item after validation, not 0", "too_short");
    return out;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    Loc at = loc + json(i);
    if (!is_object(c, v[i], at)) continue;
    ChatMessage m;
    require_string(c, v[i], at, "role", m.role);
    if (field(v[i], "role") && v[i]["role"].is_string()) {
      check_literal(c, at + "role", m.role, {"system", "user", "assistant"});
    }
    require_string(c, v[i], at, "content", m.content);
    out.push_back(std::move(m));
  }
  return out;
}

SampleParams read_sample_params(Checker& c, const json& obj, const Loc& loc) {
  SampleParams p;
  read_int(c, obj, loc, "max_new_tokens", p.max_new_tokens, range_ge_le(1, kMaxNewTokensLimit));
  read_number(c, obj, loc, "temperature", p.temperature, range_ge_le(0, 10));
  read_number(c, obj, loc, "top_p", p.top_p, range_ge_le(0, 1));
  read_int(c, obj, loc, "top_k", p.top_k, range_ge(0));
  read_bool(c, obj, loc, "do_sample", p.do_sample);
  read_int(c, obj, loc, "num_samples", p.num_samples, range_ge_le(1, kMaxNumSamples));
  if (const json* s = field(obj, "seed")) {
    uint64_t seed = 0;
    if (auto v = as_int(c, *s, loc + "seed"); v && check_ge(c, loc + "seed", *v, 0)) {
      seed = uint64_t(*v);
      p.seed = seed;
    } else if (s->is_number_unsigned()) {
      p.seed = s->get<uint64_t>();
    }
  }
  if (const json* s = field(obj, "stop")) {
    if (s->is_string()) {  // OpenAI style: one string
      if (s->get<std::string>().empty()) {
        c.fail(loc + "stop", "String should have at least 1 character", "string_too_short");
      } else {
        p.stop = {s->get<std::string>()};
      }
    } else if (auto list = read_string_list(c, *s, loc + "stop", true)) {
      p.stop = std::move(*list);
    }
  }
  if (const json* s = field(obj, "stop_token_ids")) {
    p.stop_token_ids = read_token_list(c, *s, loc + "stop_token_ids", 0);
  }
  read_bool(c, obj, loc, "return_logprobs", p.return_logprobs);
  return p;
}

std::optional<uint64_t> read_seed(Checker& c, const json& obj, const Loc& loc) {
  const json* s = field(obj, "seed");
  if (!s) return std::nullopt;
  if (s->is_number_unsigned()) return s->get<uint64_t>();
  auto v = as_int(c, *s, loc + "seed");
  if (v && check_ge(c, loc + "seed", *v, 0)) return uint64_t(*v);
  return std::nullopt;
}

// --- writers ---

template <typename T>
void put_opt(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

void write_datum_fields(json& j, const Datum& d) {
  j["input_ids"] = d.input_ids;
  put_opt(j, "target_ids", d.target_ids);
  put_opt(j, "weights", d.weights);
  put_opt(j, "advantages", d.advantages);
  put_opt(j, "logprobs", d.logprobs);
}

// Reads an optional-with-default field of a reply (lenient: Part-A servers omit Part-B fields).
template <typename T>
void get_if(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) out = it->get<T>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public validation entry points
// ---------------------------------------------------------------------------------------------

json parse_body(std::string_view text, bool allow_empty) {
  bool blank = true;
  for (char ch : text) blank = blank && (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t');
  if (blank) {
    if (allow_empty) return json::object();
    Checker c;
    c.missing({"body"});
    c.throw_if_failed();
  }
  json body;
  try {
    body = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    Checker c;
    c.fail({"body", json(e.byte > 0 ? e.byte - 1 : 0)}, "JSON decode error", "json_invalid");
    c.throw_if_failed();
  } catch (const json::exception& e) {  // e.g. out_of_range.406: a number that overflows
    Checker c;
    c.fail({"body", 0}, std::string("JSON decode error: ") + e.what(), "json_invalid");
    c.throw_if_failed();
  }
  if (!body.is_object()) {
    Checker c;
    is_object(c, body, {"body"});
    c.throw_if_failed();
  }
  return body;
}

void validate_name(std::string_view name, const std::vector<std::string>& loc) {
  Checker c;
  Loc l(loc.begin(), loc.end());
  check_name(c, name, l);
  c.throw_if_failed();
}

CreateRunRequest parse_create_run_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  CreateRunRequest r;
  read_opt_string(c, body, b, "from_checkpoint", r.from_checkpoint);
  if (r.from_checkpoint && r.from_checkpoint->empty()) {
    c.fail(b + "from_checkpoint", "String should have at least 1 character", "string_too_short");
  }
  if (r.from_checkpoint) {
    read_string(c, body, b, "base_model", r.base_model);
  } else {
    require_string(c, body, b, "base_model", r.base_model);
  }
  if (const json* l = field(body, "lora_config")) r.lora_config = read_lora_config(c, *l, b + "lora_config");
  if (const json* l = field(body, "loss_config")) r.loss_config = read_loss_config(c, *l, b + "loss_config");
  read_opt_string(c, body, b, "run_id", r.run_id);
  if (r.run_id) check_name(c, *r.run_id, b + "run_id");
  r.seed = read_seed(c, body, b);
  c.throw_if_failed();
  return r;
}

ForwardBackwardRequest parse_forward_backward_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  ForwardBackwardRequest r;

  const bool single = field(body, "input_ids") != nullptr;
  const bool batch = field(body, "examples") != nullptr;
  const bool text = field(body, "prompt") != nullptr || field(body, "completion") != nullptr;
  const bool chat = field(body, "messages") != nullptr;
  const int forms = int(single) + int(batch) + int(text) + int(chat);
  if (forms == 0) {
    c.missing(b + "input_ids");  // Part A's required field
  } else if (forms > 1) {
    c.value_error(b, "give exactly one training input: input_ids (single), examples (batch), "
                     "prompt+completion (text) or messages (chat)");
  } else if (single) {
    r.form = TrainInputForm::kSingle;
    r.examples.push_back(read_datum(c, body, b));
  } else if (batch) {
    r.form = TrainInputForm::kBatch;
    const json& ex = body["examples"];
    if (is_list(c, ex, b + "examples")) {
      if (ex.empty()) {
        c.fail(b + "examples", "List should have at least 1 item after validation, not 0",
               "too_short");
      }
      for (size_t i = 0; i < ex.size() && c.count() < Checker::kMaxErrors; ++i) {
        r.examples.push_back(read_datum(c, ex[i], b + "examples" + json(i)));
      }
    }
  } else if (text) {
    r.form = TrainInputForm::kText;
    require_string(c, body, b, "prompt", r.prompt);
    require_string(c, body, b, "completion", r.completion);
    if (field(body, "completion") && body["completion"].is_string() && r.completion.empty()) {
      c.fail(b + "completion", "String should have at least 1 character", "string_too_short");
    }
  } else {
    r.form = TrainInputForm::kChat;
    r.messages = read_messages(c, body["messages"], b + "messages");
    read_string(c, body, b, "train_on", r.train_on);
    check_literal(c, b + "train_on", r.train_on, {"assistant", "last_assistant", "all"});
  }

  read_string(c, body, b, "loss_fn", r.loss_fn);
  const bool loss_fn_ok =
      check_literal(c, b + "loss_fn", r.loss_fn, {"cross_entropy", "importance_sampling", "ppo"});
  if (const json* red = field(body, "reduction")) {
    r.reduction = as_string(c, *red, b + "reduction");
    if (r.reduction) check_literal(c, b + "reduction", *r.reduction, {"mean", "sum"});
  }
  read_number(c, body, b, "clip_low", r.clip_low, range_gt_le(0, 1));
  read_number(c, body, b, "clip_high", r.clip_high, range_ge(1));
  if (const json* l = field(body, "loss_config")) r.loss_config = read_loss_config(c, *l, b + "loss_config");

  // The RL losses need per-token advantages and sampler log-probs on every example.
  if (loss_fn_ok && r.loss_fn != "cross_entropy") {
    if (r.form == TrainInputForm::kText || r.form == TrainInputForm::kChat) {
      c.value_error(b + "loss_fn", "loss_fn '" + r.loss_fn +
                                       "' needs token-level input (input_ids or examples with "
                                       "advantages and logprobs)");
    } else {
      for (size_t i = 0; i < r.examples.size(); ++i) {
        Loc at = r.form == TrainInputForm::kSingle ? b : b + "examples" + json(i);
        if (!r.examples[i].advantages) c.missing(at + "advantages");
        if (!r.examples[i].logprobs) c.missing(at + "logprobs");
      }
    }
  }
  c.throw_if_failed();
  return r;
}

AdamParams parse_optim_step_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  AdamParams p;
  read_number(c, body, b, "learning_rate", p.learning_rate, range_gt(0));
  read_number(c, body, b, "weight_decay", p.weight_decay, range_ge(0));
  if (const json* betas = field(body, "betas")) {
    Loc at = b + "betas";
    if (is_list(c, *betas, at)) {
      if (betas->size() != 2) {
        c.value_error(at, "`betas` has " + std::to_string(betas->size()) +
                              " entries, expected 2 ([beta1, beta2])");
      } else {
        auto b1 = as_number(c, (*betas)[0], at + 0);
        auto b2 = as_number(c, (*betas)[1], at + 1);
        if (b1 && check_ge(c, at + 0, *b1, 0) && check_lt(c, at + 0, *b1, 1)) p.beta1 = *b1;
        if (b2 && check_ge(c, at + 1, *b2, 0) && check_lt(c, at + 1, *b2, 1)) p.beta2 = *b2;
      }
    }
  }
  read_number(c, body, b, "eps", p.eps, range_gt(0));
  read_number(c, body, b, "grad_clip_norm", p.grad_clip_norm, range_ge(0));
  c.throw_if_failed();
  return p;
}

SampleRequest parse_sample_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  SampleRequest r;
  const bool text = field(body, "prompt") != nullptr;
  const bool ids = field(body, "prompt_ids") != nullptr;
  const bool chat = field(body, "messages") != nullptr;
  const int forms = int(text) + int(ids) + int(chat);
  if (forms == 0) {
    c.missing(b + "prompt");  // Part A's required field
  } else if (forms > 1) {
    c.value_error(b, "give exactly one of prompt, prompt_ids or messages");
  } else if (text) {
    r.form = PromptForm::kText;
    read_string(c, body, b, "prompt", r.prompt);
    if (body["prompt"].is_string() && r.prompt.empty()) {
      c.fail(b + "prompt", "String should have at least 1 character", "string_too_short");
    }
  } else if (ids) {
    r.form = PromptForm::kTokenIds;
    if (auto v = read_token_list(c, body["prompt_ids"], b + "prompt_ids", 0)) {
      if (v->empty()) {
        c.fail(b + "prompt_ids", "List should have at least 1 item after validation, not 0",
               "too_short");
      }
      r.prompt_ids = std::move(*v);
    }
  } else {
    r.form = PromptForm::kChat;
    r.messages = read_messages(c, body["messages"], b + "messages");
  }
  read_opt_string(c, body, b, "run_id", r.run_id);
  read_opt_string(c, body, b, "base_model", r.base_model);
  if (r.run_id && r.base_model) {
    c.value_error(b, "give run_id (sample through the run's adapter) or base_model (no "
                     "adapter), not both");
  }
  r.params = read_sample_params(c, body, b);
  c.throw_if_failed();
  return r;
}

SaveRequest parse_save_request(const json& body, const std::optional<std::string>& query_name) {
  Checker c;
  SaveRequest r;
  if (query_name) {
    r.name = *query_name;
    check_name(c, r.name, {"query", "name"});
  } else if (!body.is_null() && !body.is_object()) {
    is_object(c, body, {"body"});
  } else if (body.is_object() && field(body, "name")) {
    read_string(c, body, {"body"}, "name", r.name);
    if (body["name"].is_string()) check_name(c, r.name, {"body", "name"});
  } else {
    c.missing({"query", "name"});
  }
  c.throw_if_failed();
  return r;
}

LoadRequest parse_load_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  LoadRequest r;
  read_opt_string(c, body, b, "name", r.name);
  read_opt_string(c, body, b, "path", r.path);
  if (r.name && r.path) {
    c.value_error(b, "give name (a checkpoint of this run) or path (a checkpoint directory), "
                     "not both");
  } else if (!r.name && !r.path && c.ok()) {
    c.missing(b + "name");
  }
  if (r.name) check_name(c, *r.name, b + "name");
  if (r.path && r.path->empty()) {
    c.fail(b + "path", "String should have at least 1 character", "string_too_short");
  }
  read_bool(c, body, b, "load_optimizer", r.load_optimizer);
  c.throw_if_failed();
  return r;
}

EvaluateRequest parse_evaluate_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  EvaluateRequest r;
  read_opt_string(c, body, b, "run_id", r.run_id);
  const json* batches = field(body, "batches");
  if (!batches) {
    c.missing(b + "batches");
  } else if (is_list(c, *batches, b + "batches")) {
    if (batches->empty()) {
      c.fail(b + "batches", "List should have at least 1 item after validation, not 0",
             "too_short");
    }
    for (size_t i = 0; i < batches->size() && c.count() < Checker::kMaxErrors; ++i) {
      Loc at = b + "batches" + json(i);
      const json& item = (*batches)[i];
      if (!is_object(c, item, at)) continue;
      EvalBatch e;
      if (const json* ids = field(item, "input_ids")) {
        if (auto v = read_token_list(c, *ids, at + "input_ids", 0)) e.input_ids = std::move(*v);
        if (ids->is_array() && ids->empty()) {
          c.fail(at + "input_ids", "List should have at least 1 item after validation, not 0",
                 "too_short");
        }
      } else {
        c.missing(at + "input_ids");
      }
      if (const json* t = field(item, "target_ids")) {
        e.target_ids = read_token_list(c, *t, at + "target_ids", std::nullopt);
        if (e.target_ids && !e.input_ids.empty()) {
          check_same_length(c, at + "target_ids", "target_ids", e.target_ids->size(), e.input_ids.size());
        }
      }
      if (const json* t = field(item, "response_ids")) e.response_ids = read_token_list(c, *t, at + "response_ids", std::nullopt);
      if (const json* t = field(item, "prompt_ids")) e.prompt_ids = read_token_list(c, *t, at + "prompt_ids", std::nullopt);
      r.batches.push_back(std::move(e));
    }
  }
  read_number(c, body, b, "temperature", r.temperature, range_ge_le(0, 10));
  read_int(c, body, b, "max_new_tokens", r.max_new_tokens, range_ge_le(1, kMaxNewTokensLimit));
  c.throw_if_failed();
  return r;
}

TokenizeRequest parse_tokenize_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  TokenizeRequest r;
  require_string(c, body, b, "text", r.text);
  read_opt_string(c, body, b, "run_id", r.run_id);
  read_opt_string(c, body, b, "base_model", r.base_model);
  read_bool(c, body, b, "add_special_tokens", r.add_special_tokens);
  c.throw_if_failed();
  return r;
}

DetokenizeRequest parse_detokenize_request(const json& body) {
  require_object_body(body);
  Checker c;
  const Loc b = {"body"};
  DetokenizeRequest r;
  if (const json* t = field(body, "tokens")) {
    if (auto v = read_token_list(c, *t, b + "tokens", 0)) r.tokens = std::move(*v);
  } else {
    c.missing(b + "tokens");
  }
  read_opt_string(c, body, b, "run_id", r.run_id);
  read_opt_string(c, body, b, "base_model", r.base_model);
  read_bool(c, body, b, "skip_special_tokens", r.skip_special_tokens);
  c.throw_if_failed();
  return r;
}

std::optional<double> parse_wait_query(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  Checker c;
  const Loc loc = {"query", "wait"};
  double seconds = 0;
  size_t used = 0;
  bool parsed = false;
  try {
    seconds = std::stod(*value, &used);
    parsed = used == value->size() && std::isfinite(seconds);
  } catch (const std::exception&) {
    parsed = false;
  }
  if (!parsed) {
    c.fail(loc, "Input should be a valid number, unable to parse string as a number",
           "float_parsing");
  } else {
    check_ge(c, loc, seconds, 0);
    check_le(c, loc, seconds, 3600);
  }
  c.throw_if_failed();
  return seconds;
}

std::optional<JobStatus> parse_job_status_query(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  auto status = job_status_from_string(*value);
  if (!status) {
    Checker c;
    check_literal(c, {"query", "status"}, *value,
                  {"queued", "running", "completed", "failed", "cancelled"});
    c.throw_if_failed();
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// to_json / from_json
// ---------------------------------------------------------------------------------------------

void to_json(json& j, const Health& v) { j = {{"status", v.status}}; }
void from_json(const json& j, Health& v) { v.status = j.at("status").get<std::string>(); }

void to_json(json& j, const Version& v) {
  j = {{"version", v.version}, {"api_version", v.api_version}};
  put_opt(j, "git_sha", v.git_sha);
}
void from_json(const json& j, Version& v) {
  v.version = j.at("version").get<std::string>();
  get_if(j, "api_version", v.api_version);
  get_if(j, "git_sha", v.git_sha);
}

void to_json(json& j, const LoadedModel& v) {
  j = {{"name", v.name}, {"dtype", v.dtype}, {"num_parameters", v.num_parameters}, {"bytes", v.bytes}};
}
void from_json(const json& j, LoadedModel& v) {
  v.name = j.at("name").get<std::string>();
  get_if(j, "dtype", v.dtype);
  get_if(j, "num_parameters", v.num_parameters);
  get_if(j, "bytes", v.bytes);
}

void to_json(json& j, const JobCounts& v) {
  j = {{"queued", v.queued}, {"running", v.running}, {"completed", v.completed},
       {"failed", v.failed}, {"cancelled", v.cancelled}};
}
void from_json(const json& j, JobCounts& v) {
  get_if(j, "queued", v.queued);
  get_if(j, "running", v.running);
  get_if(j, "completed", v.completed);
  get_if(j, "failed", v.failed);
  get_if(j, "cancelled", v.cancelled);
}

void to_json(json& j, const Status& v) {
  j = {{"version", v.version}, {"uptime_s", v.uptime_s},       {"device", v.device},
       {"threads", v.threads}, {"workers", v.workers},         {"models", v.models},
       {"num_runs", v.num_runs}, {"queue_depth", v.queue_depth}, {"jobs", v.jobs}};
}
void from_json(const json& j, Status& v) {
  get_if(j, "version", v.version);
  get_if(j, "uptime_s", v.uptime_s);
  get_if(j, "device", v.device);
  get_if(j, "threads", v.threads);
  get_if(j, "workers", v.workers);
  get_if(j, "models", v.models);
  get_if(j, "num_runs", v.num_runs);
  get_if(j, "queue_depth", v.queue_depth);
  get_if(j, "jobs", v.jobs);
}

void to_json(json& j, const LoraConfig& v) {
  j = {{"r", v.r}, {"lora_alpha", v.lora_alpha}, {"lora_dropout", v.lora_dropout},
       {"use_rslora", v.use_rslora}};
  if (v.all_linear()) {
    j["target_modules"] = "all-linear";
  } else {
    j["target_modules"] = v.target_modules;
  }
}
void from_json(const json& j, LoraConfig& v) {
  Checker c;
  v = j.is_null() ? LoraConfig{} : read_lora_config(c, j, {"body", "lora_config"});
  c.throw_if_failed();
}

void to_json(json& j, const LossConfig& v) {
  j = {{"loss_type", v.loss_type}, {"ignore_index", v.ignore_index}, {"focal_alpha", v.focal_alpha},
       {"focal_gamma", v.focal_gamma}, {"reduction", v.reduction}};
}
void from_json(const json& j, LossConfig& v) {
  Checker c;
  v = j.is_null() ? LossConfig{} : read_loss_config(c, j, {"body", "loss_config"});
  c.throw_if_failed();
}

void to_json(json& j, const CreateRunRequest& v) {
  j = {{"base_model", v.base_model}, {"lora_config", v.lora_config}, {"loss_config", v.loss_config}};
  put_opt(j, "run_id", v.run_id);
  put_opt(j, "from_checkpoint", v.from_checkpoint);
  put_opt(j, "seed", v.seed);
}
void from_json(const json& j, CreateRunRequest& v) { v = parse_create_run_request(j); }

void to_json(json& j, const CreateRunResponse& v) {
  j = {{"run_id", v.run_id}, {"status", v.status}, {"message", v.message}};
}
void from_json(const json& j, CreateRunResponse& v) {
  v.run_id = j.at("run_id").get<std::string>();
  get_if(j, "status", v.status);
  get_if(j, "message", v.message);
}

void to_json(json& j, const RunSummary& v) {
  j = {{"run_id", v.run_id}, {"base_model", v.base_model}, {"device", v.device}};
}
void from_json(const json& j, RunSummary& v) {
  v.run_id = j.at("run_id").get<std::string>();
  get_if(j, "base_model", v.base_model);
  get_if(j, "device", v.device);
}

void to_json(json& j, const ListRunsResponse& v) { j = {{"runs", v.runs}}; }
void from_json(const json& j, ListRunsResponse& v) { v.runs = j.at("runs").get<std::vector<RunSummary>>(); }

void to_json(json& j, const RunInfo& v) {
  j = {{"run_id", v.run_id},
       {"base_model", v.base_model},
       {"device", v.device},
       {"lora_config", v.lora_config},
       {"loss_config", v.loss_config},
       {"trainable_parameters", v.trainable_parameters},
       {"step", v.step},
       {"tokens_trained", v.tokens_trained},
       {"last_loss", v.last_loss},
       {"created_at", v.created_at}};
}
void from_json(const json& j, RunInfo& v) {
  v.run_id = j.at("run_id").get<std::string>();
  get_if(j, "base_model", v.base_model);
  get_if(j, "device", v.device);
  get_if(j, "lora_config", v.lora_config);
  get_if(j, "loss_config", v.loss_config);
  get_if(j, "trainable_parameters", v.trainable_parameters);
  get_if(j, "step", v.step);
  get_if(j, "tokens_trained", v.tokens_trained);
  get_if(j, "last_loss", v.last_loss);
  get_if(j, "created_at", v.created_at);
}

void to_json(json& j, const DeleteRunResponse& v) { j = {{"status", v.status}, {"run_id", v.run_id}}; }
void from_json(const json& j, DeleteRunResponse& v) {
  get_if(j, "status", v.status);
  v.run_id = j.at("run_id").get<std::string>();
}

void to_json(json& j, const Datum& v) {
  j = json::object();
  write_datum_fields(j, v);
}
void from_json(const json& j, Datum& v) {
  Checker c;
  v = read_datum(c, j, {"body"});
  c.throw_if_failed();
}

void to_json(json& j, const ChatMessage& v) { j = {{"role", v.role}, {"content", v.content}}; }
void from_json(const json& j, ChatMessage& v) {
  v.role = j.at("role").get<std::string>();
  v.content = j.at("content").get<std::string>();
}

void to_json(json& j, const ForwardBackwardRequest& v) {
  j = json::object();
  switch (v.form) {
    case TrainInputForm::kSingle:
      if (!v.examples.empty()) write_datum_fields(j, v.examples.front());
      break;
    case TrainInputForm::kBatch:
      j["examples"] = v.examples;
      break;
    case TrainInputForm::kText:
      j["prompt"] = v.prompt;
      j["completion"] = v.completion;
      break;
    case TrainInputForm::kChat:
      j["messages"] = v.messages;
      j["train_on"] = v.train_on;
      break;
  }
  j["loss_fn"] = v.loss_fn;
  put_opt(j, "reduction", v.reduction);
  j["clip_low"] = v.clip_low;
  j["clip_high"] = v.clip_high;
  put_opt(j, "loss_config", v.loss_config);
}
void from_json(const json& j, ForwardBackwardRequest& v) { v = parse_forward_backward_request(j); }

void to_json(json& j, const ForwardBackwardResult& v) {
  j = {{"loss", v.loss}, {"batches", v.batches}, {"num_tokens", v.num_tokens}, {"logprobs", v.logprobs}};
}
void from_json(const json& j, ForwardBackwardResult& v) {
  v.loss = j.at("loss").get<double>();
  get_if(j, "batches", v.batches);
  get_if(j, "num_tokens", v.num_tokens);
  get_if(j, "logprobs", v.logprobs);
}

void to_json(json& j, const AdamParams& v) {
  j = {{"learning_rate", v.learning_rate}, {"weight_decay", v.weight_decay},
       {"betas", {v.beta1, v.beta2}},      {"eps", v.eps},
       {"grad_clip_norm", v.grad_clip_norm}};
}
void from_json(const json& j, AdamParams& v) { v = parse_optim_step_request(j); }

void to_json(json& j, const OptimStepResult& v) {
  j = {{"status", v.status}, {"step", v.step}, {"grad_norm", v.grad_norm}, {"learning_rate", v.learning_rate}};
}
void from_json(const json& j, OptimStepResult& v) {
  v.status = j.at("status").get<std::string>();
  get_if(j, "step", v.step);
  get_if(j, "grad_norm", v.grad_norm);
  get_if(j, "learning_rate", v.learning_rate);
}

void write_sample_params(json& j, const SampleParams& p) {
  j["max_new_tokens"] = p.max_new_tokens;
  j["temperature"] = p.temperature;
  j["top_p"] = p.top_p;
  j["top_k"] = p.top_k;
  j["do_sample"] = p.do_sample;
  j["num_samples"] = p.num_samples;
  put_opt(j, "seed", p.seed);
  j["stop"] = p.stop;
  put_opt(j, "stop_token_ids", p.stop_token_ids);
  j["return_logprobs"] = p.return_logprobs;
}

void to_json(json& j, const SampleRequest& v) {
  j = json::object();
  switch (v.form) {
    case PromptForm::kText: j["prompt"] = v.prompt; break;
    case PromptForm::kTokenIds: j["prompt_ids"] = v.prompt_ids; break;
    case PromptForm::kChat: j["messages"] = v.messages; break;
  }
  put_opt(j, "run_id", v.run_id);
  put_opt(j, "base_model", v.base_model);
  write_sample_params(j, v.params);
}
void from_json(const json& j, SampleRequest& v) { v = parse_sample_request(j); }

void to_json(json& j, const SampleOutput& v) {
  j = {{"text", v.text}, {"token_ids", v.token_ids}, {"finish_reason", v.finish_reason}};
  put_opt(j, "logprobs", v.logprobs);
}
void from_json(const json& j, SampleOutput& v) {
  v.text = j.at("text").get<std::string>();
  get_if(j, "token_ids", v.token_ids);
  get_if(j, "logprobs", v.logprobs);
  get_if(j, "finish_reason", v.finish_reason);
}

void to_json(json& j, const SampleResult& v) {
  j = {{"generated_text", v.generated_text}, {"samples", v.samples}};
}
void from_json(const json& j, SampleResult& v) {
  v.generated_text = j.at("generated_text").get<std::string>();
  get_if(j, "samples", v.samples);
}

void to_json(json& j, const SaveRequest& v) { j = {{"name", v.name}}; }
void from_json(const json& j, SaveRequest& v) { v = parse_save_request(j, std::nullopt); }

void to_json(json& j, const SaveResult& v) {
  j = {{"name", v.name},
       {"run_id", v.run_id},
       {"path", v.path},
       {"adapter_path", v.adapter_path},
       {"optimizer_path", v.optimizer_path},
       {"step", v.step}};
}
void from_json(const json& j, SaveResult& v) {
  v.adapter_path = j.at("adapter_path").get<std::string>();
  get_if(j, "name", v.name);
  get_if(j, "run_id", v.run_id);
  get_if(j, "path", v.path);
  get_if(j, "optimizer_path", v.optimizer_path);
  get_if(j, "step", v.step);
}

void to_json(json& j, const LoadRequest& v) {
  j = {{"load_optimizer", v.load_optimizer}};
  put_opt(j, "name", v.name);
  put_opt(j, "path", v.path);
}
void from_json(const json& j, LoadRequest& v) { v = parse_load_request(j); }

void to_json(json& j, const LoadResult& v) {
  j = {{"run_id", v.run_id}, {"path", v.path}, {"step", v.step}, {"loaded_optimizer", v.loaded_optimizer}};
}
void from_json(const json& j, LoadResult& v) {
  get_if(j, "run_id", v.run_id);
  get_if(j, "path", v.path);
  get_if(j, "step", v.step);
  get_if(j, "loaded_optimizer", v.loaded_optimizer);
}

void to_json(json& j, const CheckpointInfo& v) {
  j = {{"name", v.name},
       {"run_id", v.run_id},
       {"adapter_path", v.adapter_path},
       {"optimizer_path", v.optimizer_path},
       {"created_at", v.created_at},
       {"size_bytes", v.size_bytes},
       {"is_sampler", v.is_sampler}};
}
void from_json(const json& j, CheckpointInfo& v) {
  v.name = j.at("name").get<std::string>();
  get_if(j, "run_id", v.run_id);
  get_if(j, "adapter_path", v.adapter_path);
  get_if(j, "optimizer_path", v.optimizer_path);
  get_if(j, "created_at", v.created_at);
  get_if(j, "size_bytes", v.size_bytes);
  get_if(j, "is_sampler", v.is_sampler);
}

void to_json(json& j, const ListCheckpointsResponse& v) { j = {{"checkpoints", v.checkpoints}}; }
void from_json(const json& j, ListCheckpointsResponse& v) {
  v.checkpoints = j.at("checkpoints").get<std::vector<CheckpointInfo>>();
}

void to_json(json& j, const DeleteCheckpointResponse& v) {
  j = {{"status", v.status}, {"run_id", v.run_id}, {"name", v.name}};
}
void from_json(const json& j, DeleteCheckpointResponse& v) {
  get_if(j, "status", v.status);
  get_if(j, "run_id", v.run_id);
  get_if(j, "name", v.name);
}

void to_json(json& j, const EvalBatch& v) {
  j = {{"input_ids", v.input_ids}};
  put_opt(j, "target_ids", v.target_ids);
  put_opt(j, "response_ids", v.response_ids);
  put_opt(j, "prompt_ids", v.prompt_ids);
}
void from_json(const json& j, EvalBatch& v) {
  v.input_ids = j.at("input_ids").get<TokenIds>();
  get_if(j, "target_ids", v.target_ids);
  get_if(j, "response_ids", v.response_ids);
  get_if(j, "prompt_ids", v.prompt_ids);
}

void to_json(json& j, const EvaluateRequest& v) {
  j = {{"batches", v.batches}, {"temperature", v.temperature}, {"max_new_tokens", v.max_new_tokens}};
  put_opt(j, "run_id", v.run_id);
}
void from_json(const json& j, EvaluateRequest& v) { v = parse_evaluate_request(j); }

void to_json(json& j, const EvaluateResult& v) { j = {{"scores", v.scores}, {"log_probs", v.log_probs}}; }
void from_json(const json& j, EvaluateResult& v) {
  v.scores = j.at("scores").get<std::vector<double>>();
  get_if(j, "log_probs", v.log_probs);
}

void to_json(json& j, const TokenizeRequest& v) {
  j = {{"text", v.text}, {"add_special_tokens", v.add_special_tokens}};
  put_opt(j, "run_id", v.run_id);
  put_opt(j, "base_model", v.base_model);
}
void from_json(const json& j, TokenizeRequest& v) { v = parse_tokenize_request(j); }

void to_json(json& j, const TokenizeResponse& v) { j = {{"tokens", v.tokens}}; }
void from_json(const json& j, TokenizeResponse& v) { v.tokens = j.at("tokens").get<TokenIds>(); }

void to_json(json& j, const DetokenizeRequest& v) {
  j = {{"tokens", v.tokens}, {"skip_special_tokens", v.skip_special_tokens}};
  put_opt(j, "run_id", v.run_id);
  put_opt(j, "base_model", v.base_model);
}
void from_json(const json& j, DetokenizeRequest& v) { v = parse_detokenize_request(j); }

void to_json(json& j, const DetokenizeResponse& v) { j = {{"text", v.text}}; }
void from_json(const json& j, DetokenizeResponse& v) { v.text = j.at("text").get<std::string>(); }

void to_json(json& j, const JobInfo& v) {
  j = {{"job_id", v.job_id},
       {"status", v.status},
       {"result", v.result_json ? json::parse(*v.result_json) : json(nullptr)},
       {"error", v.error}};
  put_opt(j, "run_id", v.run_id);
  put_opt(j, "type", v.type);
  put_opt(j, "created_at", v.created_at);
}
void from_json(const json& j, JobInfo& v) {
  v.job_id = j.at("job_id").get<std::string>();
  v.status = j.at("status").get<JobStatus>();
  v.result_json.reset();
  if (auto it = j.find("result"); it != j.end() && !it->is_null()) v.result_json = it->dump();
  v.error.reset();
  get_if(j, "error", v.error);
  get_if(j, "run_id", v.run_id);
  get_if(j, "type", v.type);
  get_if(j, "created_at", v.created_at);
}

void to_json(json& j, const ListJobsResponse& v) { j = {{"jobs", v.jobs}}; }
void from_json(const json& j, ListJobsResponse& v) { v.jobs = j.at("jobs").get<std::vector<JobInfo>>(); }

}  // namespace eztinker::api
