// Package image gives the oci driver its images (docs/design.md §6): it
// resolves a reference (an OCI image layout directory, a `docker save` or
// OCI archive tar, or a registry), verifies what it reads against its
// digests, and unpacks each image once per manifest digest into a
// content-addressed cache that every container of that image shares,
// read-only. It also packs a static binary into an OCI image layout
// (`coexist image pack`), for tests, the demo and users without a registry.
//
// Image formats are read and written with go-containerregistry; this package
// only flattens an image's file system onto disk, inside an os.Root so that
// no entry of a layer can write outside the image's directory.
//
// It implements driver.ImageStore and imports nothing else of the module.
package image
