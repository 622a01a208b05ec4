// Model folders: a single model.safetensors, or shards listed by model.safetensors.index.json.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/checkpoint.h"
#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using l2a::DType;
using l2a::test::message_of;
using l2a::test::write_file;

namespace {

fs::path scratch_dir() { return l2a::test::scratch_dir("checkpoint"); }

// Each tensor holds floats counting up from `first`, so every tensor's bytes are distinct.
void write_shard(const fs::path& path,
                 const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& tensors,
                 float first) {
    l2a::SafetensorsWriter writer(path);
    for (const auto& [name, shape] : tensors) {
        std::int64_t numel = 1;
        for (const auto dim : shape) {
            numel *= dim;
        }
        std::vector<float> values(static_cast<std::size_t>(numel));
        for (float& v : values) {
            v = first++;
        }
        writer.add(name, DType::F32, shape,
                   std::as_bytes(std::span<const float>(values.data(), values.size())));
    }
    writer.finish();
}

float first_value(const l2a::TensorView& view) {
    float value = 0;
    std::memcpy(&value, view.data, sizeof value);
    return value;
}

// Two shards in the HuggingFace layout.
fs::path sharded_model() {
    const fs::path dir = scratch_dir();
    write_shard(dir / "model-00001-of-00002.safetensors",
                {{"model.embed_tokens.weight", {4, 2}}, {"model.norm.weight", {2}}}, 0.f);
    write_shard(dir / "model-00002-of-00002.safetensors", {{"lm_head.weight", {4, 2}}}, 100.f);
    write_file(dir / "model.safetensors.index.json", R"({
        "metadata": {"total_size": 72},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"
        }
    })");
    return dir;
}

}  // namespace

TEST(Checkpoint, SingleFile) {
    const fs::path dir = scratch_dir();
    write_shard(dir / "model.safetensors", {{"a", {2, 3}}, {"b", {3}}}, 1.f);
    const auto checkpoint = l2a::Checkpoint::open(dir);
    EXPECT_EQ(checkpoint.dir(), dir);
    EXPECT_EQ(checkpoint.tensor_names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(checkpoint.has("a"));
    EXPECT_FALSE(checkpoint.has("c"));
    EXPECT_EQ(first_value(checkpoint.get("a")), 1.f);
    EXPECT_EQ(first_value(checkpoint.get("b", {3})), 7.f);
    EXPECT_EQ(checkpoint.get("a").size_bytes(), 24u);
    EXPECT_EQ(checkpoint.file_of("b"), dir / "model.safetensors");
}

TEST(Checkpoint, ShardedFolder) {
    const fs::path dir = sharded_model();
    auto checkpoint = l2a::Checkpoint::open(dir);
    EXPECT_EQ(checkpoint.tensor_names(),
              (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                        "model.norm.weight"}));
    EXPECT_EQ(first_value(checkpoint.get("model.norm.weight")), 8.f);
    EXPECT_EQ(first_value(checkpoint.get("lm_head.weight", {4, 2})), 100.f);
    EXPECT_EQ(checkpoint.file_of("lm_head.weight"), dir / "model-00002-of-00002.safetensors");
    EXPECT_EQ(checkpoint.file_of("model.norm.weight"), dir / "model-00001-of-00002.safetensors");
    // Views stay valid when the checkpoint moves.
    const l2a::TensorView view = checkpoint.get("lm_head.weight");
    l2a::Checkpoint moved = std::move(checkpoint);
    EXPECT_EQ(moved.get("lm_head.weight").data, view.data);
}

TEST(Checkpoint, SingleFileWinsOverIndex) {
    const fs::path dir = sharded_model();
    write_shard(dir / "model.safetensors", {{"only", {1}}}, 5.f);
    const auto checkpoint = l2a::Checkpoint::open(dir);
    EXPECT_EQ(checkpoint.tensor_names(), std::vector<std::string>{"only"});
}

TEST(Checkpoint, MissingTensor) {
    const fs::path dir = sharded_model();
    const auto checkpoint = l2a::Checkpoint::open(dir);
    const fs::path index = dir / "model.safetensors.index.json";
    EXPECT_EQ(message_of([&] { checkpoint.get("model.layers.0.q_proj.weight"); }),
              index.string() + ": missing tensor 'model.layers.0.q_proj.weight'");
    EXPECT_EQ(checkpoint.file_of("nope"), index);

    const fs::path single_dir = dir / "single";
    fs::create_directory(single_dir);
    write_shard(single_dir / "model.safetensors", {{"a", {1}}}, 0.f);
    const auto single = l2a::Checkpoint::open(single_dir);
    EXPECT_EQ(message_of([&] { single.get("b"); }),
              (single_dir / "model.safetensors").string() + ": missing tensor 'b'");
}

TEST(Checkpoint, ShapeMismatch) {
    const fs::path dir = sharded_model();
    const auto checkpoint = l2a::Checkpoint::open(dir);
    EXPECT_EQ(message_of([&] {
                  checkpoint.get("lm_head.weight", {2, 4});
              }),
              (dir / "model-00002-of-00002.safetensors").string() +
                  ": tensor 'lm_head.weight' has shape [4, 2], expected [2, 4]");
}

TEST(Checkpoint, NoWeightsFile) {
    const fs::path dir = scratch_dir();
    write_shard(dir / "weights.safetensors", {{"a", {1}}}, 0.f);  // another name: not looked at
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              dir.string() + ": no model.safetensors or model.safetensors.index.json");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir / "absent"); }),
              (dir / "absent").string() + ": model folder does not exist");
    EXPECT_CONTAINS(message_of([&] { l2a::Checkpoint::open(dir / "weights.safetensors"); }),
                    "weights.safetensors: is not a folder");
}

TEST(Checkpoint, IndexWithMissingShard) {
    const fs::path dir = sharded_model();
    fs::remove(dir / "model-00002-of-00002.safetensors");
    const std::string message = message_of([&] { l2a::Checkpoint::open(dir); });
    EXPECT_EQ(message, (dir / "model.safetensors.index.json").string() +
                           ": shard 'model-00002-of-00002.safetensors' (listed for tensor "
                           "'lm_head.weight') does not exist: " +
                           (dir / "model-00002-of-00002.safetensors").string());
}

TEST(Checkpoint, IndexNamesTensorAbsentFromItsShard) {
    const fs::path dir = sharded_model();
    write_file(dir / "model.safetensors.index.json", R"({"weight_map": {
        "model.norm.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00001-of-00002.safetensors"}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              (dir / "model.safetensors.index.json").string() +
                  ": tensor 'lm_head.weight' is listed in shard "
                  "'model-00001-of-00002.safetensors' but that file does not contain it");
}

TEST(Checkpoint, MalformedIndex) {
    const fs::path dir = sharded_model();
    const fs::path index = dir / "model.safetensors.index.json";
    const std::string prefix = index.string() + ": ";

    write_file(index, R"({"weight_map": {"a": )");
    EXPECT_CONTAINS(message_of([&] { l2a::Checkpoint::open(dir); }),
                    prefix + "malformed JSON at line 1, column ");
    write_file(index, "[]");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix + "expected a JSON object, found array");
    write_file(index, R"({"metadata": {}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix + "missing \"weight_map\" object {tensor name: shard file}");
    write_file(index, R"({"weight_map": {}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix + "\"weight_map\" lists no tensors");
    write_file(index, R"({"weight_map": {"lm_head.weight": 2}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix +
                  "weight_map: tensor 'lm_head.weight' must map to a shard file name, "
                  "found number");
    write_file(index, R"({"metadata": 3, "weight_map": {"a": "x.safetensors"}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix + "\"metadata\" must be an object");
    write_file(index, R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
    EXPECT_EQ(message_of([&] { l2a::Checkpoint::open(dir); }),
              prefix +
                  "weight_map: shard '../model-00001-of-00002.safetensors' (for tensor "
                  "'a') is not a file inside the model folder");
    write_file(index, R"({"weight_map": {"a": "/etc/passwd"}})");
    EXPECT_CONTAINS(message_of([&] { l2a::Checkpoint::open(dir); }),
                    "is not a file inside the model folder");
}

TEST(Checkpoint, InvalidShardIsNamed) {
    const fs::path dir = sharded_model();
    write_file(dir / "model-00002-of-00002.safetensors", "not safetensors at all");
    const std::string message = message_of([&] { l2a::Checkpoint::open(dir); });
    EXPECT_CONTAINS(message,
                    (dir / "model-00002-of-00002.safetensors").string() + ": header length");
}

TEST(Checkpoint, InvalidSingleFileIsNamed) {
    const fs::path dir = scratch_dir();
    write_file(dir / "model.safetensors", "");
    EXPECT_CONTAINS(message_of([&] { l2a::Checkpoint::open(dir); }),
                    (dir / "model.safetensors").string() + ": file is too short");
}
