"""Upload and validate a scenario: every problem listed, nothing imported while any remains."""

from __future__ import annotations

import hashlib

import streamlit as st

from wulian.contract.problems import ValidationError
from wulian.planning import fmt
from wulian.planning import session as S
from wulian.planning.limits import MB, limits
from wulian.planning.scenario import Scenario
from wulian.ui.common import SCENARIO_KEY, UPLOADED_KEY, show_problems, tr

CANDIDATE_KEY = "upload_candidate"


@st.cache_resource(show_spinner=False, max_entries=4)
def _validated(content_digest: str, _files: dict[str, bytes]) -> Scenario:
    """Validate an upload once per content (a rerun of the page does not re-read it)."""
    return S.scenario_from_files(_files)


def _use_candidate() -> None:
    """Import the validated upload (a callback: it runs before the sidebar is drawn, so the
    scenario picker may switch to it)."""
    candidate = st.session_state.pop(CANDIDATE_KEY, None)
    if candidate is not None:
        st.session_state[UPLOADED_KEY] = candidate
        st.session_state[SCENARIO_KEY] = "upload"


def upload_limit_mb() -> int:
    """The largest file the box takes, in MB: the service's body limit
    (``WULIAN_MAX_BODY_BYTES``, planning/limits.py), or Streamlit's ``server.maxUploadSize``
    when that is lower (``wulian ui`` sets it from the limit; a bare ``streamlit run`` reads
    .streamlit/config.toml)."""
    ours = limits().max_body_bytes // MB
    return int(min(ours, st.get_option("server.maxUploadSize")))


def uploader_texts() -> None:
    """Streamlit's file box in the chosen language. The widget's own texts (Upload, Add files,
    "Drag and drop files here", "200MB per file • CSV, PARQUET, XLSX") are English and have
    no setting; a style scoped to the box's data-testids hides them and shows ours from the
    text table, with our limit. The drag-over text ("Drag and drop files here") is the one
    span in a div without a test id; with files in the box that div holds the chips instead,
    left alone. tests/test_ui_browser.py checks each state in Chromium."""
    def css(text: str) -> str:  # a CSS string: quotes and backslashes escaped
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    box = '[data-testid="stFileUploaderDropzone"]'
    st.html(f"""<style>
{box} button [data-testid="stMarkdownContainer"] {{ display: none; }}
{box} button span[data-has-shortcut]:has([data-testid="stMarkdownContainer"])::after {{
  content: {css(tr("upload.browse"))}; font-size: 0.875rem; }}
[data-testid="stFileUploaderDropzoneInstructions"] span {{ display: none; }}
[data-testid="stFileUploaderDropzoneInstructions"] > div::after {{
  content: {css(tr("upload.limit", mb=fmt.count(upload_limit_mb())))}; font-size: 0.875rem;
  opacity: 0.6; }}
{box} > div:not([data-testid]) > span {{ font-size: 0; }}
{box} > div:not([data-testid]) > span::after {{ content: {css(tr("upload.drop"))};
  font-size: 1rem; }}
</style>""")


def file_size(size: int) -> str:
    """Bytes for people: KB under a megabyte (16 KB read "0.0 MB"), else MB."""
    return f"{size / 1e3:,.1f} KB" if size < 1e6 else f"{size / 1e6:,.1f} MB"


def upload_box(prefix: str) -> None:
    """A file uploader with its validation report and an import button (``prefix`` keeps the
    widgets of two pages apart)."""
    uploader_texts()
    files = st.file_uploader(tr("upload.files"), type=["csv", "parquet", "xlsx"],
                             accept_multiple_files=True, key=f"{prefix}_upload")
    last_key = f"{prefix}_last_upload"
    if not files:
        # The uploader forgets its files when the page is left; the report is kept, so the
        # coordinator coming back still sees what was wrong (or that it was fine).
        last = st.session_state.get(last_key)
        if last is None:
            st.session_state.pop(CANDIDATE_KEY, None)
            return
        st.caption(tr("upload.last", names=", ".join(last["names"])))
        if last["problems"]:
            show_problems(last["problems"], f"{prefix}_problems")
            return
        scenario = last["scenario"]
    else:
        contents = {f.name: f.getvalue() for f in files}
        size = sum(len(c) for c in contents.values())
        digest = hashlib.sha256()
        for name in sorted(contents):
            digest.update(name.encode() + b"\0" + contents[name])
        refused: ValidationError | None = None
        with st.status(tr("upload.validating", files=fmt.count(len(contents)),
                          size=file_size(size))) as status:
            try:
                scenario = _validated(digest.hexdigest(), contents)
            except ValidationError as err:  # the box says so, not "validating" for ever
                refused = err
                status.update(label=tr("upload.refused", n=fmt.count(len(err.problems))),
                              state="error")
            else:
                status.update(label=tr("upload.validated"), state="complete")
        if refused is not None:
            st.session_state.pop(CANDIDATE_KEY, None)
            st.session_state[last_key] = {"names": sorted(contents),
                                          "problems": refused.problems, "scenario": None}
            show_problems(refused.problems, f"{prefix}_problems")
            return
        st.session_state[last_key] = {"names": sorted(contents), "problems": [],
                                      "scenario": scenario}
    st.session_state[CANDIDATE_KEY] = scenario
    st.success(tr("upload.ok", households=fmt.count(len(scenario.households)),
                  needs=fmt.count(len(scenario.needs))))
    st.button(tr("upload.import"), key=f"{prefix}_import", on_click=_use_candidate,
              type="primary")
    uploaded = st.session_state.get(UPLOADED_KEY)
    if uploaded is not None and uploaded.digest == scenario.digest:
        st.caption(tr("upload.imported", name=uploaded.path.removeprefix("upload:")))
