/* The version of lua-qstash: this line is the one place it is written.
 * The module's _VERSION, the user agent and `qstash-dlq --version` read it
 * through the module; `make dist` reads it to name the release rockspec and
 * tarball, and spec/release_spec.lua checks the rockspec and CHANGELOG.md
 * agree with it. */
#ifndef QS_VERSION_H
#define QS_VERSION_H

#define QS_VERSION "0.1.0"

#endif
