// The demo's report rendering (recipes/demo.cpp): the progress bar, summary.json and the SVG
// plot, on a hand-built summary (no server). The demo loop itself runs in tests/e2e/demo_test.cpp.
#include "eztinker/recipes/demo.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace ezr = eztinker::recipes;

TEST(DemoRenderTest, ProgressBarSummaryJsonAndPlot) {
  EXPECT_EQ(ezr::progress_bar(5, 10, 10), "[#####.....] 5/10");
  EXPECT_EQ(ezr::progress_bar(0, 0, 4), "[####] 0/0");

  ezr::DemoSummary s;
  s.run_id = "run_x";
  s.model = "tiny<&>";
  s.dataset = "arithmetic";
  ezr::DemoEvaluation e0;
  e0.reward = 0.01;
  e0.answer_loss = 6.0;
  ezr::DemoEvaluation e1;
  e1.epoch = 1;
  e1.reward = 0.2;
  e1.accuracy = 0.25;
  e1.answer_loss = 2.5;
  e1.train_loss = 3.0;
  e1.train_reward = 0.1;
  s.evaluations = {e0, e1};
  s.reward_gain = 0.19;
  s.improved = true;
  auto j = nlohmann::json::parse(ezr::demo_summary_json(s));
  EXPECT_EQ(j["run_id"], "run_x");
  EXPECT_EQ(j["evaluations"].size(), 2u);
  EXPECT_TRUE(j["evaluations"][0]["train_loss"].is_null());
  EXPECT_DOUBLE_EQ(j["reward_after"].get<double>(), 0.2);
  EXPECT_TRUE(j["improved"].get<bool>());
  std::string svg = ezr::demo_plot_svg(s);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("tiny&lt;&amp;&gt;"), std::string::npos);  // escaped
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
}
