"""Git deploys: a repository URL and a route in, an app serving at that route out, without a restart.

The master runs the pipeline (``deployer.py``) but never imports app code: the clone is git's work
(``git.py``, the only module that imports GitPython, loaded by the first deploy), the import check runs in
a throwaway interpreter (``verify.py``), and the new app is imported by a new generation.  Everything a
user can type is checked before git runs (``urls.py``, ``names.py``); what is deployed, and at which
commit, is kept in records under APP_DIR (``records.py``) so a restart serves the same apps.  Entry point
discovery is ``entry.py``; keeping two apps from shadowing each other's modules is ``modules.py``; the
shell commands are ``commandline.py``.
"""
