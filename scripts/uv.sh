# Sourced by the other scripts: makes `uv` available, installing it from PyPI when missing.
if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
    echo "installing uv from PyPI" >&2
    python3 -m pip install --quiet uv
fi
uv() {
    if command -v uv >/dev/null 2>&1; then command uv "$@"; else python3 -m uv "$@"; fi
}
