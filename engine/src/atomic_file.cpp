#include "l2a/engine/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <random>
#include <string>

#include "l2a/engine/error.h"

namespace l2a {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

// Hidden, and unique across threads and processes writing into the same folder.
std::filesystem::path temp_path_for(const std::filesystem::path& path) {
    static std::atomic<unsigned> counter{0};
    static const unsigned salt = std::random_device{}();
    const std::string name = "." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                             "-" + std::to_string(salt % 100000) + "-" +
                             std::to_string(counter.fetch_add(1));
    return path.parent_path() / name;
}

// After a rename the new directory entry is durable only once the directory itself is synced.
// Failing here cannot make the file wrong, only less durable, so errors are ignored.
void sync_directory(const std::filesystem::path& dir) {
    const std::string name = dir.empty() ? "." : dir.string();
    const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
    if (path_.filename().empty()) {
        fail(path_.string(), "not a file name");
    }
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        temp_path_ = temp_path_for(path_);
        // 0666 lets the umask decide, as for any file the user creates.
        fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) {
            const int error = errno;
            fail(path_.string(), "cannot create a temporary file beside it: " + errno_text(error));
        }
    }
    if (fd < 0) {
        fail(path_.string(), "cannot find a free temporary file name beside it");
    }
    // Replacing a file keeps its permissions (a private file stays private).
    struct stat existing {};
    if (::stat(path_.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) {
        ::fchmod(fd, existing.st_mode & 07777);
    }
    stream_ = ::fdopen(fd, "wb");
    if (stream_ == nullptr) {
        const int error = errno;
        ::close(fd);
        ::unlink(temp_path_.c_str());
        fail(path_.string(), "cannot open a temporary file: " + errno_text(error));
    }
    std::setvbuf(stream_, nullptr, _IOFBF, std::size_t{1} << 20);
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::write(const void* data, std::size_t size) {
    if (stream_ == nullptr) {
        fail(path_.string(), "write after the file was closed");
    }
    if (size != 0 && std::fwrite(data, 1, size, stream_) != size) {
        const int error = errno;
        discard();
        fail(path_.string(), "cannot write: " + errno_text(error));
    }
}

void AtomicFile::commit() {
    if (stream_ == nullptr) {
        fail(path_.string(), "commit after the file was closed");
    }
    std::FILE* stream = stream_;
    stream_ = nullptr;
    const auto give_up = [&](const char* what, int error) {
        ::unlink(temp_path_.c_str());
        fail(path_.string(), std::string(what) + ": " + errno_text(error));
    };
    if (std::fflush(stream) != 0 || std::ferror(stream) != 0) {
        const int error = errno;
        std::fclose(stream);
        give_up("cannot write", error);
    }
    if (::fsync(::fileno(stream)) != 0) {
        const int error = errno;
        std::fclose(stream);
        give_up("cannot sync to disk", error);
    }
    if (std::fclose(stream) != 0) {
        give_up("cannot close", errno);
    }
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
        give_up("cannot rename the temporary file over it", errno);
    }
    sync_directory(path_.parent_path());
}

void AtomicFile::discard() noexcept {
    if (stream_ != nullptr) {
        std::fclose(stream_);
        stream_ = nullptr;
        ::unlink(temp_path_.c_str());
    }
}

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::FILE*)>& write) {
    AtomicFile file(path);
    try {
        write(file.stream());
    } catch (const Error& e) {
        file.discard();
        const std::string message = e.what();
        if (message.find(path.string()) != std::string::npos) {
            throw;
        }
        fail(path.string(), message);
    } catch (const std::exception& e) {
        file.discard();
        fail(path.string(), e.what());
    }
    if (std::ferror(file.stream()) != 0) {
        const int error = errno;
        file.discard();
        fail(path.string(), "cannot write: " + errno_text(error));
    }
    file.commit();
}

void write_text_atomically(const std::filesystem::path& path, std::string_view text) {
    AtomicFile file(path);
    file.write(text.data(), text.size());
    file.commit();
}

std::string read_text_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        fail(path.string(), "cannot open: " + errno_text(error));
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        const int error = errno;
        ::close(fd);
        fail(path.string(), "cannot read: " + errno_text(error));
    }
    if (S_ISDIR(info.st_mode)) {
        ::close(fd);
        fail(path.string(), "is a folder, not a file");
    }
    std::string text;
    const bool regular = S_ISREG(info.st_mode);
    if (regular) {
        text.reserve(static_cast<std::size_t>(info.st_size));
    }
    // A pipe or device has no size to check first (/dev/zero never ends): reading stops here.
    constexpr std::size_t stream_limit = std::size_t{256} << 20;
    char buffer[1 << 16];
    for (;;) {
        if (!regular && text.size() > stream_limit) {
            ::close(fd);
            fail(path.string(),
                 "is not a regular file (a pipe or device) and gives more than 256 MiB");
        }
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            const int error = errno;
            ::close(fd);
            fail(path.string(), "cannot read: " + errno_text(error));
        }
        if (got == 0) {
            break;
        }
        text.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(fd);
    return text;
}

}  // namespace l2a
