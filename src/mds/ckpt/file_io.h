// Durable small-file writes for checkpoints: a file that is renamed into place must already be on
// disk, or a crash could leave a name that points at empty data.
#pragma once

#include <string>

namespace mds::ckpt {

// Writes text to path (overwriting it) and fsyncs it. UserError naming the path on failure.
void write_file_durably(const std::string& path, const std::string& text);

// Replaces path atomically: writes path + ".tmp", fsyncs, renames over path, fsyncs the folder.
// A reader sees either the old content or the new, never a mix.
void write_file_atomically(const std::string& path, const std::string& text);

// fsyncs a directory so that renames and creations inside it survive a crash.
void sync_directory(const std::string& dir);

}  // namespace mds::ckpt
