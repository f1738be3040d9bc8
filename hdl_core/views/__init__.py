"""What the pages show, computed: replay, gallery, the toy and its walkthrough, 2-D maps.

numpy / pandas in, numpy / pandas out; no Streamlit, no files.
"""
