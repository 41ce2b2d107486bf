package devicescli

import "os"

// keepOwner: the new file inherits the directory's ACL on Windows.
func keepOwner(*os.File, os.FileInfo) error { return nil }
