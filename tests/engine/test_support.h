// What the test programs share: scratch folders, whole-file reads and writes, l2a::Error
// messages, tensors read back from safetensors files, and the Python reference scripts.
// Header-only, so that every test binary stays one source file.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"

namespace l2a::test {

// ---- scratch folders and files ---------------------------------------------------------------

// `dir`, empty: whatever an earlier run left there is removed first.
inline std::filesystem::path fresh_dir(const std::filesystem::path& dir) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// A fresh folder for the running test, <work dir>/<topic>/<suite>.<test>, so that tests may run
// in parallel.
inline std::filesystem::path scratch_dir(const std::string& topic) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    return fresh_dir(std::filesystem::path(L2A_TEST_WORK_DIR) / topic /
                     (std::string(test->test_suite_name()) + "." + test->name()));
}

// A test with its own scratch folder `dir_`, removed again when the test passes (a failure keeps
// it for inspection).
class ScratchDirTest : public ::testing::Test {
protected:
    explicit ScratchDirTest(std::string topic) : topic_(std::move(topic)) {}
    void SetUp() override { dir_ = scratch_dir(topic_); }
    void TearDown() override {
        if (!HasFailure()) std::filesystem::remove_all(dir_);
    }
    std::filesystem::path dir_;

private:
    std::string topic_;
};

// The whole file, byte for byte ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

// ---- errors ----------------------------------------------------------------------------------

// The message of the l2a::Error that `action` throws; nothing when it throws none.
template <typename Action>
std::optional<std::string> thrown_error(Action&& action) {
    try {
        std::forward<Action>(action)();
    } catch (const Error& e) {
        return e.what();
    }
    return std::nullopt;
}

// The message of the l2a::Error that `action` must throw; throwing none fails the test.
inline std::string message_of(const std::function<void()>& action) {
    if (std::optional<std::string> message = thrown_error(action)) {
        return *message;
    }
    ADD_FAILURE() << "expected l2a::Error";
    return {};
}

#define EXPECT_CONTAINS(text, part) \
    EXPECT_NE(std::string(text).find(part), std::string::npos) << "message: " << (text)

// Skips the running test unless this build has c10d NCCL process groups and at least two GPUs
// are visible (the tests of tensor parallel over two GPUs). Needs l2a/engine/device.h and
// l2a/engine/process_group.h where it is used.
#define SKIP_WITHOUT_TWO_NCCL_GPUS()                                                            \
    do {                                                                                        \
        if (!::l2a::nccl_process_groups_available()) {                                          \
            GTEST_SKIP() << "this build has no c10d NCCL (a CUDA build with the torch wheel's " \
                            "NCCL headers): no tensor parallel on GPUs to test";                \
        }                                                                                       \
        if (::l2a::cuda_device_count() < 2) {                                                   \
            GTEST_SKIP() << "fewer than 2 GPUs visible (" << ::l2a::cuda_device_count() << ")"; \
        }                                                                                       \
    } while (false)

// ---- tensors ---------------------------------------------------------------------------------

// The elements of `view` as T (the caller knows its dtype).
template <typename T>
std::vector<T> elements_of(const TensorView& view) {
    std::vector<T> values(view.size_bytes() / sizeof(T));
    std::memcpy(values.data(), view.data, values.size() * sizeof(T));
    return values;
}

// Tensor `name` of `file`, which must have `dtype`.
template <typename T>
std::vector<T> read_tensor(const SafetensorsFile& file, const std::string& name, DType dtype) {
    const TensorView view = file.view(name);
    if (view.info->dtype != dtype) {
        throw std::runtime_error(file.path().string() + ": " + name + " has dtype " +
                                 dtype_name(view.info->dtype));
    }
    return elements_of<T>(view);
}

// The largest elementwise |a - b| over the common length; NaN when any difference is NaN.
inline double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0.0;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        const double difference = std::abs(static_cast<double>(a[i]) - b[i]);
        if (!(difference <= worst)) {
            worst = difference;  // also propagates NaN
        }
    }
    return worst;
}

// "1.23e-05": how test properties report differences.
inline std::string scientific(double value) {
    std::ostringstream text;
    text << std::scientific << std::setprecision(2) << value;
    return text.str();
}

// ---- Python references -----------------------------------------------------------------------

// The exit status with which a reference script says that a Python package it needs is missing.
inline constexpr int kPythonSkipExitCode = 77;

// `text` as one word for /bin/sh.
inline std::string shell_quote(const std::string& text) {
    std::string quoted = "'";
    for (char c : text) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

// Whether L2A_PYTHON exists and can import `modules` ("torch, transformers").
inline bool python_can_import(const std::string& modules) {
    const std::string python = L2A_PYTHON;
    if (python.empty() || !std::filesystem::exists(python)) {
        return false;
    }
    const std::string command =
        shell_quote(python) + " -c " + shell_quote("import " + modules) + " >/dev/null 2>&1";
    return std::system(command.c_str()) == 0;
}

// Runs `L2A_PYTHON script arguments` (arguments already quoted for the shell) with its output in
// `log`; returns its exit status, -1 when it did not exit normally.
inline int run_python_script(const std::filesystem::path& script, const std::string& arguments,
                             const std::filesystem::path& log) {
    const std::string command = shell_quote(L2A_PYTHON) + " " + shell_quote(script.string()) + " " +
                                arguments + " > " + shell_quote(log.string()) + " 2>&1";
    const int status = std::system(command.c_str());
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Whether the outputs of a reference script are there to compare with, and if not, why.
struct ReferenceStatus {
    bool ready = false;
    bool skip = false;  // this machine cannot make them: not a failure
    std::string message;
};

// Runs a reference script that writes the outputs the tests compare with. A missing L2A_PYTHON
// or package means skip; any other failure is one. `what` names the reference in the skip
// message, `step` the script run in the failure message; both carry the script's log.
inline ReferenceStatus make_reference(const std::filesystem::path& script,
                                      const std::string& arguments,
                                      const std::filesystem::path& log, const std::string& what,
                                      const std::string& step) {
    ReferenceStatus status;
    const std::string python = L2A_PYTHON;
    if (python.empty() || !std::filesystem::exists(python)) {
        status.skip = true;
        status.message = "L2A_PYTHON (" + python + ") is not available";
        return status;
    }
    const int exit_code = run_python_script(script, arguments, log);
    if (exit_code == 0) {
        status.ready = true;
    } else if (exit_code == kPythonSkipExitCode) {
        status.skip = true;
        status.message = what + " unavailable: " + read_file(log);
    } else {
        status.message =
            step + " failed (exit " + std::to_string(exit_code) + "):\n" + read_file(log);
    }
    return status;
}

// A test that compares with a reference's outputs: skipped where `reference_status` says they
// cannot be made here, failed where making them failed.
template <const ReferenceStatus& (*reference_status)()>
class ReferenceTest : public ::testing::Test {
protected:
    void SetUp() override {
        const ReferenceStatus& status = reference_status();
        if (status.skip) {
            GTEST_SKIP() << status.message;
        }
        ASSERT_TRUE(status.ready) << status.message;
    }
};

}  // namespace l2a::test
