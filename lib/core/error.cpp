#include <swarm/core/error.hpp>

#include <stdexcept>

namespace swarm::inline v0 {
namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "swarm"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::invalid_argument: return "invalid argument";
        case errc::truncated: return "input truncated";
        case errc::malformed: return "malformed input";
        case errc::too_large: return "length or count over its bound";
        case errc::unsupported_version: return "unsupported version";
        case errc::authentication_failed: return "authentication failed";
        case errc::replayed: return "message replayed";
        case errc::wrong_cluster: return "message sealed for another cluster";
        case errc::unknown_key: return "message sealed with a key not in the keyring";
        case errc::config_unknown_key: return "unknown configuration key";
        case errc::config_wrong_type: return "configuration value has the wrong type";
        case errc::config_invalid_value: return "invalid configuration value";
        case errc::config_missing_key: return "required configuration key missing";
        case errc::io_error: return "i/o error";
        case errc::key_file_corrupt: return "key file corrupt";
        case errc::key_file_permissions: return "key file readable by others";
        case errc::not_found: return "not found";
        case errc::already_exists: return "already exists";
        case errc::connection_refused: return "connection refused";
        case errc::connection_reset: return "connection reset";
        case errc::timed_out: return "timed out";
        case errc::cancelled: return "cancelled";
        case errc::shut_down: return "shut down";
        case errc::unreachable: return "destination unreachable";
        case errc::message_too_large: return "message larger than the path allows";
        case errc::data_unavailable: return "fewer intact shards than needed to rebuild the data";
        }
        return "unknown swarm error " + std::to_string(value);
    }
};

} // namespace

const boost::system::error_category& swarm_category() noexcept {
    static const category instance;
    return instance;
}

std::string error::describe() const {
    if (message.empty()) return code.message();
    return message + " (" + code.message() + ")";
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
    throw std::runtime_error(e.describe());
}

} // namespace swarm::inline v0
