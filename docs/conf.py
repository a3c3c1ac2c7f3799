# Sphinx configuration of histo_lib's documentation site. `docs/build.py` (run by `./dev.sh docs`) generates the
# sources into `_proc/docs/` from `nbs/` and the package, then builds them with this file into `_docs/`.
import histo_lib

project = 'histo_lib'
author = 'histo_lib developers'
release = version = histo_lib.__version__
copyright = 'histo_lib developers, Apache-2.0'

extensions = ['myst_nb', 'sphinx.ext.githubpages']   # githubpages: .nojekyll, so Pages serves _static/ and _images/
root_doc = 'index'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
nb_execution_mode = 'off'          # the notebooks' saved outputs are the documentation: nothing is run again
nb_merge_streams = True            # one block per cell for stdout, as Jupyter shows it
nb_output_stderr = 'remove'        # warnings printed while the notebook ran are not documentation
myst_enable_extensions = ['colon_fence', 'deflist']   # no dollarmath: `$TMP` in outputs and prose is not math
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure']
highlight_language = 'python3'

html_theme = 'sphinx_book_theme'
html_title = 'histo_lib'
html_baseurl = 'https://histo-lib.github.io/histo_lib/'
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    'repository_url': 'https://github.com/histo-lib/histo_lib',
    'use_repository_button': True,
    'home_page_in_toc': True,
    'show_navbar_depth': 1,
    'show_toc_level': 2,
    'navigation_with_keys': False,
    'use_download_button': False,   # it links the page's source, which the site does not copy
}
html_context = {'default_mode': 'light'}   # pydata's theme logs a console error without a stored or default mode
html_favicon = 'favicon.svg'               # else every browser asks for /favicon.ico and gets a 404
html_last_updated_fmt = None
