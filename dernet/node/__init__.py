"""A DICOM node (the 'dicom' extra): receive radiographs by C-STORE into a durable spool, screen them with the
gate's core, send the SR, SC and PR on by C-STORE; nothing is lost when the process is killed."""
