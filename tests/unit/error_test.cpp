// Tests for include/eztinker/error.h: the ErrorType table, the exact FastAPI bodies, and the
// client-side inverse (error_from_response) that the client and CLI rely on.
#include "eztinker/error.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>

namespace eztinker {
namespace {

using nlohmann::json;

TEST(ErrorTable, StatusPerType) {
  EXPECT_EQ(http_status(ErrorType::kValidation), 422);
  EXPECT_EQ(http_status(ErrorType::kBadRequest), 400);
  EXPECT_EQ(http_status(ErrorType::kUnauthorized), 401);
  EXPECT_EQ(http_status(ErrorType::kNotFound), 404);
  EXPECT_EQ(http_status(ErrorType::kMethodNotAllowed), 405);
  EXPECT_EQ(http_status(ErrorType::kConflict), 409);
  EXPECT_EQ(http_status(ErrorType::kPayloadTooLarge), 413);
  EXPECT_EQ(http_status(ErrorType::kQueueFull), 503);
  EXPECT_EQ(http_status(ErrorType::kInternal), 500);
  EXPECT_EQ(http_status(ErrorType::kConnection), 0);
  EXPECT_EQ(http_status(ErrorType::kTimeout), 0);
  EXPECT_EQ(http_status(ErrorType::kJobFailed), 0);
}

TEST(ErrorTable, StatusMapsBackToTheSameTypeAndNamesAreUnique) {
  std::set<std::string_view> names;
  for (ErrorType t : {ErrorType::kValidation, ErrorType::kBadRequest, ErrorType::kUnauthorized,
                      ErrorType::kNotFound, ErrorType::kMethodNotAllowed, ErrorType::kConflict,
                      ErrorType::kPayloadTooLarge, ErrorType::kQueueFull, ErrorType::kInternal,
                      ErrorType::kConnection, ErrorType::kTimeout, ErrorType::kJobFailed}) {
    EXPECT_TRUE(names.insert(error_type_name(t)).second) << error_type_name(t);
    if (http_status(t) != 0) {
      EXPECT_EQ(error_type_from_status(http_status(t)), t);
    }
  }
  EXPECT_EQ(error_type_from_status(418), ErrorType::kBadRequest);
  EXPECT_EQ(error_type_from_status(502), ErrorType::kInternal);
}

TEST(ErrorBody, StringDetail) {
  ApiError e(ErrorType::kBadRequest, "Run ID run_x not found");
  EXPECT_EQ(e.http_status(), 400);
  EXPECT_EQ(error_body_json(e), R"({"detail":"Run ID run_x not found"})");
  EXPECT_STREQ(e.what(), "Run ID run_x not found");
}

TEST(ErrorBody, NotFoundAndMethodNotAllowedMatchFastApi) {
  EXPECT_EQ(error_body_json(ApiError(ErrorType::kNotFound, "Not Found")), R"({"detail":"Not Found"})");
  EXPECT_EQ(error_body_json(ApiError(ErrorType::kMethodNotAllowed, "Method Not Allowed")),
            R"({"detail":"Method Not Allowed"})");
}

TEST(ErrorBody, ValidationListIsKeptVerbatim) {
  std::string list = R"([{"loc":["body","input_ids"],"msg":"Field required","type":"missing"}])";
  ApiError e = ApiError::validation("input_ids: Field required", list);
  EXPECT_EQ(e.http_status(), 422);
  EXPECT_EQ(json::parse(error_body_json(e)), json::parse(R"({"detail":)" + list + "}"));
}

TEST(ErrorBody, ValidationWithoutListGetsFastApiShape) {
  ApiError e(ErrorType::kValidation, "bad thing");
  json body = json::parse(error_body_json(e));
  ASSERT_TRUE(body["detail"].is_array());
  EXPECT_EQ(body["detail"][0]["loc"], json({"body"}));
  EXPECT_EQ(body["detail"][0]["msg"], "bad thing");
}

TEST(ErrorFromResponse, ReadsStringDetail) {
  ApiError e = error_from_response(404, R"({"detail":"Job not found"})");
  EXPECT_EQ(e.type(), ErrorType::kNotFound);
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_EQ(e.message(), "Job not found");
}

TEST(ErrorFromResponse, SummarizesA422List) {
  ApiError e = error_from_response(
      422, R"({"detail":[{"loc":["body","lora_config","r"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"},{"loc":["query","wait"],"msg":"bad","type":"x"}]})");
  EXPECT_EQ(e.type(), ErrorType::kValidation);
  EXPECT_EQ(e.message(), "lora_config.r: Input should be greater than or equal to 1; wait: bad");
  EXPECT_EQ(json::parse(e.detail_json()).size(), 2u);
  // Re-serializing on the server side gives the same body back.
  EXPECT_EQ(json::parse(error_body_json(e))["detail"], json::parse(e.detail_json()));
}

TEST(ErrorFromResponse, NonJsonBodyFallsBack) {
  ApiError html = error_from_response(502, "<html>Bad Gateway</html>");
  EXPECT_EQ(html.type(), ErrorType::kInternal);
  EXPECT_EQ(html.message(), "<html>Bad Gateway</html>");
  ApiError empty = error_from_response(503, "");
  EXPECT_EQ(empty.type(), ErrorType::kQueueFull);
  EXPECT_EQ(empty.message(), "HTTP 503");
}

TEST(ConnectionErrorTest, NamesTheUrlAndIsAnApiError) {
  ConnectionError e("http://127.0.0.1:9", "Connection refused");
  EXPECT_EQ(e.type(), ErrorType::kConnection);
  EXPECT_EQ(e.url(), "http://127.0.0.1:9");
  EXPECT_NE(std::string(e.what()).find("http://127.0.0.1:9"), std::string::npos);
  const ApiError& base = e;
  EXPECT_EQ(base.http_status(), 0);
}

TEST(ApiErrorTest, CarriesJobIdAndRetryAfter) {
  ApiError e(ErrorType::kJobFailed, "boom");
  e.with_job_id("job_1").with_retry_after(3);
  EXPECT_EQ(e.job_id(), "job_1");
  EXPECT_EQ(e.retry_after_s(), 3);
}

}  // namespace
}  // namespace eztinker
