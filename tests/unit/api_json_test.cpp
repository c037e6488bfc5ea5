// Wire-format tests for include/eztinker/api_json.h: golden JSON files (tests/data/api/*.json)
// parse and re-serialize identically, struct -> JSON -> struct round trips, Part A defaults
// and quirks, and the 422 detail lists of request validation.
#include "eztinker/api_json.h"
#include "eztinker/api_paths.h"
#include "eztinker/api_types.h"
#include "eztinker/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "test_support.h"

namespace eztinker::api {
namespace {

using nlohmann::json;

json golden(const std::string& name) {
  return json::parse(testing::read_file(testing::test_data_dir() / "api" / (name + ".json")));
}

// Golden file -> T -> JSON must give the file back (values and, through dump(), the exact
// number formatting), so renaming a field or changing a default breaks here first.
template <typename T>
void expect_golden_round_trip(const std::string& name) {
  SCOPED_TRACE(name);
  json file = golden(name);
  T value = file.get<T>();
  json again = value;
  EXPECT_EQ(again, file);
  EXPECT_EQ(again.dump(), file.dump());
  // And once more through the struct, to catch lossy from_json.
  EXPECT_EQ(json(again.get<T>()), file);
}

TEST(ApiGolden, EveryFileRoundTrips) {
  expect_golden_round_trip<Health>("health");
  expect_golden_round_trip<Version>("version");
  expect_golden_round_trip<Status>("status");
  expect_golden_round_trip<CreateRunRequest>("create_run_request");
  expect_golden_round_trip<CreateRunRequest>("create_run_request_defaults");
  expect_golden_round_trip<CreateRunResponse>("create_run_response");
  expect_golden_round_trip<ListRunsResponse>("list_runs");
  expect_golden_round_trip<RunInfo>("run_info");
  expect_golden_round_trip<DeleteRunResponse>("delete_run_response");
  expect_golden_round_trip<ForwardBackwardRequest>("forward_backward_single");
  expect_golden_round_trip<ForwardBackwardRequest>("forward_backward_batch");
  expect_golden_round_trip<ForwardBackwardRequest>("forward_backward_text");
  expect_golden_round_trip<ForwardBackwardRequest>("forward_backward_chat");
  expect_golden_round_trip<ForwardBackwardResult>("forward_backward_result");
  expect_golden_round_trip<AdamParams>("optim_step_request");
  expect_golden_round_trip<OptimStepResult>("optim_step_result");
  expect_golden_round_trip<SampleRequest>("sample_request");
  expect_golden_round_trip<SampleRequest>("sample_request_chat");
  expect_golden_round_trip<SampleResult>("sample_result");
  expect_golden_round_trip<SaveRequest>("save_request");
  expect_golden_round_trip<SaveResult>("save_result");
  expect_golden_round_trip<LoadRequest>("load_request");
  expect_golden_round_trip<LoadResult>("load_result");
  expect_golden_round_trip<ListCheckpointsResponse>("checkpoints");
  expect_golden_round_trip<DeleteCheckpointResponse>("delete_checkpoint_response");
  expect_golden_round_trip<EvaluateRequest>("evaluate_request");
  expect_golden_round_trip<EvaluateResult>("evaluate_result");
  expect_golden_round_trip<TokenizeRequest>("tokenize_request");
  expect_golden_round_trip<TokenizeResponse>("tokenize_response");
  expect_golden_round_trip<DetokenizeRequest>("detokenize_request");
  expect_golden_round_trip<DetokenizeResponse>("detokenize_response");
  expect_golden_round_trip<JobInfo>("job_queued");
  expect_golden_round_trip<JobInfo>("job_completed");
  expect_golden_round_trip<JobInfo>("job_failed");
  expect_golden_round_trip<ListJobsResponse>("jobs_list");
}

TEST(ApiGolden, ParsedValuesLandInTheRightFields) {
  auto run = golden("create_run_request").get<CreateRunRequest>();
  EXPECT_EQ(run.base_model, "Qwen/Qwen2-0.5B-Instruct");
  EXPECT_EQ(run.lora_config.r, 4);
  EXPECT_EQ(run.lora_config.lora_alpha, 8);
  EXPECT_EQ(run.lora_config.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(run.lora_config.use_rslora);
  EXPECT_EQ(run.loss_config.loss_type, "focal_loss");
  EXPECT_EQ(run.run_id, "custom123");
  EXPECT_EQ(run.seed, 42u);

  auto fb = golden("forward_backward_batch").get<ForwardBackwardRequest>();
  EXPECT_EQ(fb.form, TrainInputForm::kBatch);
  ASSERT_EQ(fb.examples.size(), 2u);
  EXPECT_EQ(fb.examples[1].input_ids, (TokenIds{8, 9}));
  EXPECT_FALSE(fb.examples[0].target_ids.has_value());
  EXPECT_EQ(fb.loss_fn, "ppo");
  EXPECT_EQ(fb.reduction, "sum");
  ASSERT_TRUE(fb.loss_config.has_value());
  EXPECT_EQ(fb.loss_config->ignore_index, -1);

  auto res = golden("forward_backward_result").get<ForwardBackwardResult>();
  ASSERT_EQ(res.logprobs.size(), 2u);
  EXPECT_FALSE(res.logprobs[0][1].has_value());  // null = ignored target
  EXPECT_FLOAT_EQ(*res.logprobs[0][2], -1.25f);

  auto sample = golden("sample_request").get<SampleRequest>();
  ASSERT_TRUE(sample.params.stop_token_ids.has_value());
  EXPECT_TRUE(sample.params.stop_token_ids->empty());  // explicit [] = no token stops
  auto chat = golden("sample_request_chat").get<SampleRequest>();
  EXPECT_EQ(chat.form, PromptForm::kChat);
  EXPECT_FALSE(chat.params.stop_token_ids.has_value());  // absent = model EOS

  auto job = golden("job_completed").get<JobInfo>();
  EXPECT_EQ(job.status, JobStatus::kCompleted);
  auto typed = result_as<ForwardBackwardResult>(job);
  EXPECT_DOUBLE_EQ(typed.loss, 2.25);
  EXPECT_EQ(typed.num_tokens, 3);
}

// --- Part A defaults and quirks ---

TEST(ApiDefaults, CreateRunFillsEveryDefault) {
  auto r = parse_create_run_request(json{{"base_model", "gpt2"}});
  EXPECT_EQ(r.lora_config.r, 8);
  EXPECT_EQ(r.lora_config.lora_alpha, 16);
  EXPECT_DOUBLE_EQ(r.lora_config.lora_dropout, 0.05);
  EXPECT_TRUE(r.lora_config.all_linear());
  EXPECT_FALSE(r.lora_config.use_rslora);
  EXPECT_EQ(r.loss_config.loss_type, "cross_entropy");
  EXPECT_EQ(r.loss_config.ignore_index, -100);
  EXPECT_EQ(r.loss_config.reduction, "mean");
  EXPECT_FALSE(r.run_id.has_value());
  EXPECT_EQ(json(r), golden("create_run_request_defaults"));
}

TEST(ApiDefaults, NullLoraConfigMeansDefaultsAndPartialIsFilled) {
  auto null_cfg = parse_create_run_request(json{{"base_model", "gpt2"}, {"lora_config", nullptr}});
  EXPECT_EQ(json(null_cfg.lora_config), json(LoraConfig{}));
  auto partial = parse_create_run_request(json{{"base_model", "gpt2"}, {"lora_config", {{"r", 2}}}});
  EXPECT_EQ(partial.lora_config.r, 2);
  EXPECT_EQ(partial.lora_config.lora_alpha, 16);
  EXPECT_DOUBLE_EQ(partial.lora_config.lora_dropout, 0.05);
}

TEST(ApiDefaults, UnknownFieldsAreIgnored) {
  auto r = parse_create_run_request(
      json{{"base_model", "gpt2"}, {"future_field", {1, 2}}, {"lora_config", {{"what", true}}}});
  EXPECT_EQ(r.base_model, "gpt2");
  auto s = parse_sample_request(json{{"prompt", "hi"}, {"unknown", "x"}});
  EXPECT_EQ(s.prompt, "hi");
}

TEST(ApiDefaults, OptimStepAndSampleDefaults) {
  auto p = parse_optim_step_request(json::object());
  EXPECT_DOUBLE_EQ(p.learning_rate, 2e-4);
  EXPECT_DOUBLE_EQ(p.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(p.beta1, 0.9);
  EXPECT_DOUBLE_EQ(p.beta2, 0.999);
  EXPECT_DOUBLE_EQ(p.eps, 1e-8);
  EXPECT_DOUBLE_EQ(p.grad_clip_norm, 1.0);

  auto s = parse_sample_request(json{{"prompt", "Hello!"}});
  EXPECT_EQ(s.form, PromptForm::kText);
  EXPECT_EQ(s.params.max_new_tokens, 100);
  EXPECT_DOUBLE_EQ(s.params.temperature, 1.0);
  EXPECT_DOUBLE_EQ(s.params.top_p, 1.0);
  EXPECT_EQ(s.params.top_k, 50);
  EXPECT_TRUE(s.params.do_sample);
  EXPECT_EQ(s.params.num_samples, 1);
  EXPECT_FALSE(s.params.seed.has_value());
  EXPECT_FALSE(s.params.stop_token_ids.has_value());
  EXPECT_FALSE(s.params.return_logprobs);
}

TEST(ApiDefaults, ForwardBackwardSingleFormMinimal) {
  auto r = parse_forward_backward_request(json{{"input_ids", {1, 2, 3}}});
  EXPECT_EQ(r.form, TrainInputForm::kSingle);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].input_ids, (TokenIds{1, 2, 3}));
  EXPECT_FALSE(r.examples[0].target_ids.has_value());
  EXPECT_EQ(r.loss_fn, "cross_entropy");
  EXPECT_FALSE(r.reduction.has_value());
  // Serializing the minimal request and parsing it back gives the same request.
  json again = r;
  EXPECT_EQ(again["input_ids"], json({1, 2, 3}));
  EXPECT_FALSE(again.contains("target_ids"));
  EXPECT_EQ(json(parse_forward_backward_request(again)), again);
}

TEST(ApiDefaults, WholeNumberFloatsAreIntegers) {
  auto r = parse_create_run_request(json::parse(R"({"base_model":"m","lora_config":{"r":4.0}})"));
  EXPECT_EQ(r.lora_config.r, 4);
}

TEST(ApiDefaults, SaveNameFromQueryOrBody) {
  EXPECT_EQ(parse_save_request(json(nullptr), std::string("a")).name, "a");
  EXPECT_EQ(parse_save_request(json{{"name", "b"}}, std::nullopt).name, "b");
  EXPECT_EQ(parse_save_request(json{{"name", "b"}}, std::string("q")).name, "q");
}

TEST(ApiDefaults, JobStatusWireStrings) {
  for (JobStatus s : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kCompleted,
                      JobStatus::kFailed, JobStatus::kCancelled}) {
    EXPECT_EQ(job_status_from_string(to_string(s)), s);
  }
  EXPECT_EQ(to_string(JobStatus::kCompleted), "completed");
  EXPECT_FALSE(job_status_from_string("done").has_value());
  EXPECT_TRUE(is_terminal(JobStatus::kCancelled));
  EXPECT_FALSE(is_terminal(JobStatus::kRunning));
}

TEST(ApiDefaults, JobInfoAlwaysCarriesResultAndError) {
  JobInfo job;
  job.job_id = "job_1";
  json j = job;
  EXPECT_EQ(j, json::parse(R"({"job_id":"job_1","status":"queued","result":null,"error":null})"));
  SampleResult result;
  result.generated_text = "hi there";
  set_result(job, result);
  job.status = JobStatus::kCompleted;
  EXPECT_EQ(result_as<SampleResult>(job).generated_text, "hi there");
  JobInfo empty;
  EXPECT_THROW(result_as<SampleResult>(empty), ApiError);
}

TEST(ApiPaths, BuildsRunAndJobPaths) {
  EXPECT_EQ(run_path("run_1", kForwardBackwardSuffix), "/v1/runs/run_1/forward_backward");
  EXPECT_EQ(run_path("run_1"), "/v1/runs/run_1");
  EXPECT_EQ(checkpoint_path("run_1", "c"), "/v1/runs/run_1/checkpoints/c");
  EXPECT_EQ(job_path("job_1"), "/v1/jobs/job_1");
}

// --- 422 detail lists ---

// Runs `fn`, expects a validation ApiError, returns its parsed detail list.
template <typename Fn>
json detail_of(Fn fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kValidation);
    EXPECT_EQ(e.http_status(), 422);
    json body = json::parse(error_body_json(e));
    EXPECT_TRUE(body["detail"].is_array());
    return body["detail"];
  }
  ADD_FAILURE() << "no ApiError thrown";
  return json::array();
}

bool has_error(const json& detail, const json& loc, const std::string& type) {
  for (const auto& d : detail) {
    if (d["loc"] == loc && d["type"] == type) return true;
  }
  return false;
}

TEST(ApiValidation, MissingBaseModel) {
  json d = detail_of([] { parse_create_run_request(json::object()); });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], json::parse(R"({"loc":["body","base_model"],"msg":"Field required","type":"missing"})"));
}

TEST(ApiValidation, LoraRankOutOfRangeNamesNestedField) {
  json d = detail_of([] {
    parse_create_run_request(json::parse(R"({"base_model":"m","lora_config":{"r":0}})"));
  });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["loc"], json::parse(R"(["body","lora_config","r"])"));
  EXPECT_EQ(d[0]["type"], "greater_than_equal");
  EXPECT_EQ(d[0]["msg"], "Input should be greater than or equal to 1");
}

TEST(ApiValidation, CollectsEveryBadField) {
  json d = detail_of([] {
    parse_create_run_request(json::parse(
        R"({"base_model":3,"lora_config":{"r":"x","lora_dropout":1.5,"target_modules":"some"},
            "loss_config":{"loss_type":"mse","reduction":"avg"}})"));
  });
  EXPECT_TRUE(has_error(d, {"body", "base_model"}, "string_type"));
  EXPECT_TRUE(has_error(d, {"body", "lora_config", "r"}, "int_type"));
  EXPECT_TRUE(has_error(d, {"body", "lora_config", "lora_dropout"}, "less_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "lora_config", "target_modules"}, "literal_error"));
  EXPECT_TRUE(has_error(d, {"body", "loss_config", "loss_type"}, "literal_error"));
  EXPECT_TRUE(has_error(d, {"body", "loss_config", "reduction"}, "literal_error"));
  EXPECT_EQ(d.size(), 6u);
}

TEST(ApiValidation, RunIdMustBeAPlainName) {
  for (const char* bad : {"../etc", "a/b", "", "x\\y"}) {
    json d = detail_of([&] { parse_create_run_request(json{{"base_model", "m"}, {"run_id", bad}}); });
    ASSERT_FALSE(d.empty()) << bad;
    EXPECT_EQ(d[0]["loc"], json({"body", "run_id"})) << bad;
  }
}

TEST(ApiValidation, WeightsLengthMustMatchInputIds) {
  json d = detail_of([] {
    parse_forward_backward_request(json::parse(R"({"input_ids":[1,2,3],"weights":[1,1]})"));
  });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["loc"], json({"body", "weights"}));
  EXPECT_EQ(d[0]["type"], "value_error");
  EXPECT_NE(d[0]["msg"].get<std::string>().find("has 2 entries, expected 3"), std::string::npos);
}

TEST(ApiValidation, TargetIdsLengthInBatchNamesTheExample) {
  json d = detail_of([] {
    parse_forward_backward_request(json::parse(
        R"({"examples":[{"input_ids":[1,2]},{"input_ids":[1,2,3],"target_ids":[1]}]})"));
  });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["loc"], json::parse(R"(["body","examples",1,"target_ids"])"));
}

TEST(ApiValidation, InputIdsRequiredNonEmptyAndNonNegative) {
  json missing = detail_of([] { parse_forward_backward_request(json::object()); });
  EXPECT_TRUE(has_error(missing, {"body", "input_ids"}, "missing"));
  json empty = detail_of([] { parse_forward_backward_request(json{{"input_ids", json::array()}}); });
  EXPECT_TRUE(has_error(empty, {"body", "input_ids"}, "too_short"));
  json neg = detail_of([] { parse_forward_backward_request(json{{"input_ids", {1, -5}}}); });
  EXPECT_TRUE(has_error(neg, json::parse(R"(["body","input_ids",1])"), "greater_than_equal"));
  json str = detail_of([] { parse_forward_backward_request(json{{"input_ids", "1 2 3"}}); });
  EXPECT_TRUE(has_error(str, {"body", "input_ids"}, "list_type"));
  json frac = detail_of([] { parse_forward_backward_request(json{{"input_ids", {1, 2.5}}}); });
  EXPECT_TRUE(has_error(frac, json::parse(R"(["body","input_ids",1])"), "int_from_float"));
}

TEST(ApiValidation, TwoTrainingFormsAreRejected) {
  json d = detail_of([] {
    parse_forward_backward_request(json{{"input_ids", {1}}, {"prompt", "a"}, {"completion", "b"}});
  });
  EXPECT_TRUE(has_error(d, {"body"}, "value_error"));
}

TEST(ApiValidation, RlLossNeedsAdvantagesAndLogprobs) {
  json d = detail_of([] {
    parse_forward_backward_request(json{{"input_ids", {1, 2}}, {"loss_fn", "ppo"}});
  });
  EXPECT_TRUE(has_error(d, {"body", "advantages"}, "missing"));
  EXPECT_TRUE(has_error(d, {"body", "logprobs"}, "missing"));
  json bad_fn = detail_of([] {
    parse_forward_backward_request(json{{"input_ids", {1, 2}}, {"loss_fn", "dpo"}});
  });
  EXPECT_TRUE(has_error(bad_fn, {"body", "loss_fn"}, "literal_error"));
}

TEST(ApiValidation, OptimStepRanges) {
  json lr = detail_of([] { parse_optim_step_request(json{{"learning_rate", -1}}); });
  EXPECT_TRUE(has_error(lr, {"body", "learning_rate"}, "greater_than"));
  json zero = detail_of([] { parse_optim_step_request(json{{"learning_rate", 0}}); });
  EXPECT_TRUE(has_error(zero, {"body", "learning_rate"}, "greater_than"));
  json inf = detail_of([] {
    parse_optim_step_request(json{{"learning_rate", std::numeric_limits<double>::infinity()}});
  });
  EXPECT_TRUE(has_error(inf, {"body", "learning_rate"}, "finite_number"));
  json nan = detail_of([] { parse_optim_step_request(json{{"eps", std::nan("")}}); });
  EXPECT_TRUE(has_error(nan, {"body", "eps"}, "finite_number"));
  // A literal that overflows a double is a JSON decode error at the body level.
  json overflow = detail_of([] { parse_body(R"({"learning_rate":1e999})"); });
  EXPECT_TRUE(has_error(overflow, {"body", 0}, "json_invalid"));
  json wd = detail_of([] { parse_optim_step_request(json{{"weight_decay", -0.1}}); });
  EXPECT_TRUE(has_error(wd, {"body", "weight_decay"}, "greater_than_equal"));
  json betas = detail_of([] { parse_optim_step_request(json{{"betas", {0.9}}}); });
  EXPECT_TRUE(has_error(betas, {"body", "betas"}, "value_error"));
  json beta_range = detail_of([] { parse_optim_step_request(json{{"betas", {0.9, 1.0}}}); });
  EXPECT_TRUE(has_error(beta_range, json::parse(R"(["body","betas",1])"), "less_than"));
  json lr_type = detail_of([] { parse_optim_step_request(json{{"learning_rate", "fast"}}); });
  EXPECT_TRUE(has_error(lr_type, {"body", "learning_rate"}, "float_type"));
}

TEST(ApiValidation, SampleRanges) {
  json d = detail_of([] {
    parse_sample_request(json{{"prompt", "x"}, {"max_new_tokens", 0}, {"temperature", 11},
                              {"top_p", 1.5}, {"top_k", -1}, {"num_samples", 0}, {"do_sample", "yes"}});
  });
  EXPECT_TRUE(has_error(d, {"body", "max_new_tokens"}, "greater_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "temperature"}, "less_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "top_p"}, "less_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "top_k"}, "greater_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "num_samples"}, "greater_than_equal"));
  EXPECT_TRUE(has_error(d, {"body", "do_sample"}, "bool_type"));
  json too_long = detail_of([] { parse_sample_request(json{{"prompt", "x"}, {"max_new_tokens", 2049}}); });
  EXPECT_TRUE(has_error(too_long, {"body", "max_new_tokens"}, "less_than_equal"));
  json none = detail_of([] { parse_sample_request(json{{"max_new_tokens", 5}}); });
  EXPECT_TRUE(has_error(none, {"body", "prompt"}, "missing"));
  json both = detail_of([] {
    parse_sample_request(json{{"prompt", "x"}, {"run_id", "a"}, {"base_model", "b"}});
  });
  EXPECT_TRUE(has_error(both, {"body"}, "value_error"));
  // Boundaries are inclusive.
  auto ok = parse_sample_request(json{{"prompt", "x"}, {"max_new_tokens", 2048}, {"temperature", 0},
                                      {"top_p", 0}, {"top_k", 0}});
  EXPECT_EQ(ok.params.max_new_tokens, 2048);
}

TEST(ApiValidation, ChatMessagesNeedRoleAndContent) {
  json d = detail_of([] {
    parse_sample_request(json::parse(R"({"messages":[{"role":"user"},{"role":"robot","content":"x"}]})"));
  });
  EXPECT_TRUE(has_error(d, json::parse(R"(["body","messages",0,"content"])"), "missing"));
  EXPECT_TRUE(has_error(d, json::parse(R"(["body","messages",1,"role"])"), "literal_error"));
}

TEST(ApiValidation, SaveNeedsAValidName) {
  json none = detail_of([] { parse_save_request(json::object(), std::nullopt); });
  EXPECT_TRUE(has_error(none, {"query", "name"}, "missing"));
  json dots = detail_of([] { parse_save_request(json{{"name", "../x"}}, std::nullopt); });
  EXPECT_TRUE(has_error(dots, {"body", "name"}, "value_error"));
  json slash = detail_of([] { parse_save_request(json(nullptr), std::string("a/b")); });
  EXPECT_TRUE(has_error(slash, {"query", "name"}, "value_error"));
  json nul = detail_of([] { parse_save_request(json(nullptr), std::string("a\0b", 3)); });
  EXPECT_TRUE(has_error(nul, {"query", "name"}, "value_error"));
  json longname = detail_of([] { parse_save_request(json(nullptr), std::string(200, 'a')); });
  EXPECT_TRUE(has_error(longname, {"query", "name"}, "string_too_long"));
}

TEST(ApiValidation, LoadNeedsExactlyNameOrPath) {
  json none = detail_of([] { parse_load_request(json::object()); });
  EXPECT_TRUE(has_error(none, {"body", "name"}, "missing"));
  json both = detail_of([] { parse_load_request(json{{"name", "a"}, {"path", "/tmp/a"}}); });
  EXPECT_TRUE(has_error(both, {"body"}, "value_error"));
  EXPECT_EQ(parse_load_request(json{{"path", "/tmp/a"}}).path, "/tmp/a");
}

TEST(ApiValidation, EvaluateNeedsBatches) {
  json none = detail_of([] { parse_evaluate_request(json::object()); });
  EXPECT_TRUE(has_error(none, {"body", "batches"}, "missing"));
  json bad = detail_of([] {
    parse_evaluate_request(json::parse(R"({"batches":[{"input_ids":[1,2],"target_ids":[1]}]})"));
  });
  EXPECT_TRUE(has_error(bad, json::parse(R"(["body","batches",0,"target_ids"])"), "value_error"));
}

TEST(ApiValidation, BodyShapeErrors) {
  json empty = detail_of([] { parse_body(""); });
  EXPECT_EQ(empty, json::parse(R"([{"loc":["body"],"msg":"Field required","type":"missing"}])"));
  json bad = detail_of([] { parse_body("{\"a\": "); });
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0]["type"], "json_invalid");
  EXPECT_EQ(bad[0]["loc"][0], "body");
  json array = detail_of([] { parse_body("[1,2]"); });
  EXPECT_TRUE(has_error(array, {"body"}, "model_attributes_type"));
  EXPECT_EQ(parse_body("", /*allow_empty=*/true), json::object());
  json not_obj = detail_of([] { parse_create_run_request(json::array()); });
  EXPECT_TRUE(has_error(not_obj, {"body"}, "model_attributes_type"));
}

TEST(ApiValidation, QueryParameters) {
  EXPECT_DOUBLE_EQ(*parse_wait_query(std::string("2.5")), 2.5);
  EXPECT_FALSE(parse_wait_query(std::nullopt).has_value());
  json d = detail_of([] { parse_wait_query(std::string("soon")); });
  EXPECT_TRUE(has_error(d, {"query", "wait"}, "float_parsing"));
  json neg = detail_of([] { parse_wait_query(std::string("-1")); });
  EXPECT_TRUE(has_error(neg, {"query", "wait"}, "greater_than_equal"));
  EXPECT_EQ(parse_job_status_query(std::string("failed")), JobStatus::kFailed);
  json st = detail_of([] { parse_job_status_query(std::string("done")); });
  EXPECT_TRUE(has_error(st, {"query", "status"}, "literal_error"));
}

TEST(ApiValidation, SummaryMessageNamesTheField) {
  try {
    parse_create_run_request(json::parse(R"({"base_model":"m","lora_config":{"r":0}})"));
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.message(), "lora_config.r: Input should be greater than or equal to 1");
  }
}

TEST(ApiValidation, HugeBadArraysGiveABoundedList) {
  json ids = json::array();
  for (int i = 0; i < 1000; ++i) ids.push_back("x");
  json d = detail_of([&] { parse_forward_backward_request(json{{"input_ids", ids}}); });
  EXPECT_LE(d.size(), 20u);
  EXPECT_GE(d.size(), 1u);
}

}  // namespace
}  // namespace eztinker::api
