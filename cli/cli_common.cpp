// Output helpers and client construction shared by the CLI subcommands (cli_common.h).
#include "cli_common.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace eztinker::cli {

EZTinkerClient make_client(const CliContext& ctx) {
  ClientOptions options;
  options.base_url = ctx.url;  // empty = env / default, resolved by the client
  options.api_key = ctx.api_key;
  options.connect_timeout_s = 3;
  options.max_retries = 2;
  options.retry_backoff_s = 0.2;
  return EZTinkerClient(options);
}

void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size(), 0);
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < width.size()) line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  };
  print_row(headers);
  for (const auto& row : rows) print_row(row);
}

void print_json(const nlohmann::json& value) { std::cout << value.dump(2) << "\n"; }

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

void register_client_commands(CLI::App& app, CliContext& ctx) {
  register_info_commands(app, ctx);
  register_run_commands(app, ctx);
  register_sample_commands(app, ctx);
  register_checkpoint_commands(app, ctx);
}

}  // namespace eztinker::cli
