"""The generation cache: the images of earlier generations, stored and found again by the request's
fingerprint, so an identical request is answered from storage instead of being paid for again.

Below the cache root (a local folder or any object store)::

    <fp[:2]>/<fp>/entry.json                   the entry: a copy of its current generation's record
    <fp[:2]>/<fp>/<generation>/entry.json      one generation's record, written after its images
    <fp[:2]>/<fp>/<generation>/<index>.<ext>   its images, in the API's order

Why this shape:

- Every generation writes into a folder of its own (a random name), so two tasks racing on one
  fingerprint never write the same file; whichever writes ``entry.json`` last wins, whole.
- A record is written after the images it lists, each write atomic by the store's rules
  (``storage.write_atomically``), so a half-written generation is never found.
- A hit is a record whose every image is present with its recorded size and sha256, read back in
  full: an entry that fails that is a miss (logged), and the next generation replaces it. A location
  handed on is therefore a generation folder's file, which nothing rewrites.
- Everything is read below the root only (``_internal.roots``): a link in a local cache that points
  out of it is never followed, and a cached location is copied only from the layout of a cache.

``fingerprint`` says what makes two requests identical, ``records`` what a record holds and how it
is read, ``generations`` finds, stores and copies: the hook and the operators call it.
"""
