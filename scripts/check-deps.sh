#!/usr/bin/env bash
# Fails when Cargo.toml lists a crate the code never uses: a [dependencies] crate must be
# named in src/ (or build.rs), a [dev-dependencies] crate in src/, tests/, benches/ or
# examples/. "Named" means a path through it (`name::`), a `use name` or an `extern crate
# name`, with the crate's library name (`md-5` is `md5`; read from the crate's own
# Cargo.toml in cargo's registry when it is there, else the package name with `-` as `_`).
# A small stand-in for `cargo machete`, which would need installing from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_home=${CARGO_HOME:-$HOME/.cargo}

# "section name" lines for every dependency of the given sections, `package =` renames
# resolved to the key (the key is what the code names).
deps() {
    awk '
        /^\[/ {
            section = $0
            gsub(/[\[\] ]/, "", section)
            # [dependencies.NAME]: a table for one crate (a `package =` in it is not read).
            if (match(section, /^(dev-)?dependencies\./)) {
                name = substr(section, RLENGTH + 1)
                print substr(section, 1, RLENGTH - 1), name, name
            }
            next
        }
        section == "dependencies" || section == "dev-dependencies" {
            line = $0
            sub(/#.*/, "", line)
            if (match(line, /^[A-Za-z0-9_-]+[ \t]*=/)) {
                name = substr(line, 1, RLENGTH)
                sub(/[ \t]*=$/, "", name)
                package = name
                if (match(line, /package[ \t]*=[ \t]*"[^"]+"/)) {
                    package = substr(line, RSTART, RLENGTH)
                    gsub(/package[ \t]*=[ \t]*"|"/, "", package)
                }
                print section, name, package
            }
        }
    ' Cargo.toml
}

# The version Cargo.lock holds for `package` (the first, when several).
locked_version() {
    awk -v want="$1" '
        $1 == "name" && $3 == "\"" want "\"" { found = 1; next }
        found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
        /^\[\[package\]\]/ { found = 0 }
    ' Cargo.lock
}

# The library name code uses for dependency `key` of package `package`.
lib_name() {
    local key=$1 package=$2 version manifest name=""
    if [ "$key" = "$package" ]; then
        version=$(locked_version "$package")
        for manifest in "$cargo_home"/registry/src/*/"$package-$version"/Cargo.toml; do
            [ -f "$manifest" ] || continue
            name=$(awk '
                /^\[/ { lib = ($0 == "[lib]"); next }
                lib && $1 == "name" { gsub(/"/, "", $3); print $3; exit }
            ' "$manifest")
            break
        done
    fi
    [ -n "$name" ] || name=$key
    echo "${name//-/_}"
}

used_in() {
    local lib=$1
    shift
    local dirs=()
    for d in "$@"; do
        [ -e "$d" ] && dirs+=("$d")
    done
    [ "${#dirs[@]}" -gt 0 ] || return 1
    grep -rqE --include='*.rs' \
        "(^|[^A-Za-z0-9_:])${lib}::|^[[:space:]]*(pub[^ ]* )?use ${lib}\\b|extern crate ${lib}\\b" \
        "${dirs[@]}"
}

unused=()
while read -r section key package; do
    lib=$(lib_name "$key" "$package")
    if [ "$section" = "dependencies" ]; then
        used_in "$lib" src build.rs || unused+=("$key ([dependencies], as \`$lib\`, not named in src/)")
    else
        used_in "$lib" src tests benches examples ||
            unused+=("$key ([dev-dependencies], as \`$lib\`, not named in src/, tests/, benches/ or examples/)")
    fi
done < <(deps)

if [ "${#unused[@]}" -gt 0 ]; then
    echo "Cargo.toml lists crates nothing uses; remove them (or use them for real):" >&2
    printf '  %s\n' "${unused[@]}" >&2
    exit 1
fi
echo "every dependency in Cargo.toml is used"
