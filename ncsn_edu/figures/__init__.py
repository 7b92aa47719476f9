"""The book's figures: matplotlib plotting, picture sliders for stored image chains, and the live
figures whose JavaScript (``live_js/``) runs the toy mathematics in the reader's browser."""
