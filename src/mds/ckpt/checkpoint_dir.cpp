#include "mds/ckpt/checkpoint_dir.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mds/ckpt/file_io.h"
#include "mds/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mds::ckpt {

namespace {

constexpr const char* kLatest = "latest_checkpointed_iteration.txt";
constexpr const char* kState = "mds_state.json";
constexpr int kStateVersion = 1;

// Puts the complete folder `tmp` at `final`. If `final` exists the two are exchanged atomically
// (renameat2), so there is no moment without a complete `final`; the old one is then deleted.
void move_into_place(const fs::path& tmp, const fs::path& final) {
  if (!fs::exists(final)) {
    MDS_CHECK(std::rename(tmp.c_str(), final.c_str()) == 0, "cannot rename {} to {}: {}",
              tmp.string(), final.string(), std::strerror(errno));
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_EXCHANGE) != 0) {
    // The file system cannot exchange: move the old one aside first (a short window without it).
    const int err = errno;
    MDS_CHECK(err == EINVAL || err == ENOSYS, "cannot replace {}: {}", final.string(),
              std::strerror(err));
    const fs::path old = fs::path(tmp).replace_extension(".old");
    fs::remove_all(old);
    fs::rename(final, old);
    fs::rename(tmp, final);
    fs::remove_all(old);
    return;
  }
  fs::remove_all(tmp);  // now holds the previous checkpoint
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  MDS_CHECK(in, "cannot read {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string iter_dir_name(int64_t iteration) {
  MDS_ASSERT(iteration >= 0, "negative iteration {}", iteration);
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%07lld", static_cast<long long>(iteration));
  return buf;
}

std::string save_checkpoint(const std::string& save_dir, const TrainState& state,
                            const model::LlamaConfig& cfg, const model::ParamTable& table,
                            const float* params, const HfSaveOptions& options) {
  const fs::path root(save_dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  MDS_CHECK(!ec && fs::is_directory(root), "cannot create --save folder {}: {}", save_dir,
            ec.message());
  const std::string name = iter_dir_name(state.iteration);
  const fs::path tmp = root / ("." + name + ".tmp");
  const fs::path final = root / name;
  fs::remove_all(tmp);  // left by a crashed save

  save_hf_checkpoint(tmp.string(), cfg, table, params, options);
  json st = {{"mds_checkpoint_version", kStateVersion},
             {"iteration", state.iteration},
             {"consumed_samples", state.consumed_samples},
             {"args", state.args}};
  if (!state.optimizer.empty()) st["optimizer"] = state.optimizer;
  write_file_durably((tmp / kState).string(), st.dump(2) + "\n");
  sync_directory(tmp.string());

  move_into_place(tmp, final);
  sync_directory(root.string());
  // Megatron writes str(iteration) with no newline; only now does latest point at the new one.
  write_file_atomically((root / kLatest).string(), std::to_string(state.iteration));
  return final.string();
}

std::string resolve_load_dir(const std::string& load) {
  const fs::path root(load);
  MDS_CHECK(fs::is_directory(root), "--load {}: no such folder", load);
  const fs::path latest = root / kLatest;
  if (fs::exists(latest)) {
    std::string text = read_text(latest);
    const auto b = text.find_first_not_of(" \t\r\n");
    const auto e = text.find_last_not_of(" \t\r\n");
    text = b == std::string::npos ? "" : text.substr(b, e - b + 1);
    fs::path dir;
    if (text == "release") {
      dir = root / "release";
    } else {
      MDS_CHECK(!text.empty() && text.size() <= 12 &&
                    text.find_first_not_of("0123456789") == std::string::npos,
                "{} should hold an iteration number or 'release', but holds '{}'", latest.string(),
                text);
      dir = root / iter_dir_name(std::stoll(text));
    }
    MDS_CHECK(fs::is_directory(dir),
              "{} names iteration '{}' but {} does not exist: restore that folder, or fix the "
              "file to name an existing iter_ folder",
              latest.string(), text, dir.string());
    return dir.string();
  }
  if (fs::exists(root / "config.json")) return root.string();
  MDS_FAIL(
      "--load {}: expected a Megatron checkpoint folder (with {}) or a Hugging Face model folder "
      "(with config.json), but found neither",
      load, kLatest);
}

std::optional<TrainState> read_train_state(const std::string& dir) {
  const fs::path path = fs::path(dir) / kState;
  if (!fs::exists(path)) return std::nullopt;
  json j;
  try {
    j = json::parse(read_text(path));
  } catch (const json::exception& e) {
    MDS_FAIL("{} is not valid JSON: {}", path.string(), e.what());
  }
  MDS_CHECK(j.is_object() && j.contains("iteration") && j["iteration"].is_number_integer() &&
                j.contains("consumed_samples") && j["consumed_samples"].is_number_integer(),
            "{} lacks an integer iteration or consumed_samples", path.string());
  TrainState s;
  s.iteration = j["iteration"].get<int64_t>();
  s.consumed_samples = j["consumed_samples"].get<int64_t>();
  if (j.contains("args")) s.args = j["args"];
  if (j.contains("optimizer") && j["optimizer"].is_object()) s.optimizer = j["optimizer"];
  return s;
}

}  // namespace mds::ckpt
