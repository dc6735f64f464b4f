// The end of a run: what it trained, how fast, and where the loss went. Rank 0 prints the
// summary, writes it as the last line of --log-json ({"summary": {...}}) and draws the loss
// history (loss_plot.h as PNG, terminal_plot.h in the terminal).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mds::train {

// Every iteration's training loss and every validation loss of the run, against iterations.
struct LossHistory {
  struct Point {
    int64_t iteration;
    double loss;
  };
  std::vector<Point> train, valid;

  // The range both curves span (train must not be empty); a single iteration spans [x, x+1].
  struct Bounds {
    double x0, x1, lo, hi;
  };
  Bounds bounds() const;
};

struct RunSummary {
  int64_t first_iteration = 0, last_iteration = 0;  // this run trained (first, last]
  int64_t tokens = 0;                               // trained by this run
  double wall_seconds = 0;       // the training loop: iterations, evaluations and checkpoints
  double train_seconds = 0;      // in training iterations only (what the log line times)
  double tokens_per_second = 0;  // tokens / train_seconds
  double tflops = 0;             // per device, Megatron's formula, over train_seconds
  double mfu = -1;               // percent of one device's peak; < 0: unknown
  double final_train_loss = -1;  // the last logged interval's lm loss
  double final_valid_loss = -1;  // the last validation loss; < 0: none was computed
};

// "> summary: 1,920 tokens in 0:00:09 (8.2 s training): 234.1 tokens/s, 0.01 TFLOP/s, ..."
std::string format_summary(const RunSummary& s);
// {"summary": {"tokens": ..., ...}} on one line.
std::string summary_json(const RunSummary& s);

}  // namespace mds::train
