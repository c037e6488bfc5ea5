// The one exception type of the dataset loaders. Messages name the file, the 1-based line (or
// conversation index and turn) and the field, e.g. "data/train.jsonl:12: missing `answer`".
#pragma once

#include <stdexcept>

namespace eztinker::datasets {

struct DatasetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace eztinker::datasets
