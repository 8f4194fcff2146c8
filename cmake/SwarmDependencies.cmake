# Every dependency comes from a Debian 12 package; scripts/install-deps installs them.
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json system)
find_package(fmt CONFIG REQUIRED)
find_package(Microsoft.GSL CONFIG REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(sodium REQUIRED IMPORTED_TARGET GLOBAL libsodium>=1.0.18)
pkg_check_modules(isal REQUIRED IMPORTED_TARGET GLOBAL libisal)
