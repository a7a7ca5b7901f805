/* Command-line parsing and virtio-scsi LUN addressing. */
#include <errno.h>

#include "cli.h"
#include "test.h"
#include "virtio_scsi/vscsi.h"

static void test_drive_ok(void)
{
    struct drive_conf c;
    char err[512];

    CHECK_EQ(cli_parse_drive("file=/tmp/x.img,id=d0,cache=none,readonly=on,discard=unmap,aio=threads",
                             &c, err, sizeof(err)), 0);
    CHECK(!strcmp(c.id, "d0"));
    CHECK(!strcmp(c.filename, "/tmp/x.img"));
    CHECK_EQ(c.blk.cache, BLK_CACHE_NONE);
    CHECK(c.blk.readonly);
    CHECK(c.blk.discard_unmap);
    CHECK_EQ(c.blk.aio, BLK_AIO_THREADS);
    CHECK_EQ(cli_parse_drive("driver=null,size=1G,id=n", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.driver, BLK_DRIVER_NULL);
    CHECK_EQ(c.blk.size, 1ull << 30);
    CHECK(!c.blk.null_no_read_zeroes);
    CHECK_EQ(cli_parse_drive("driver=null,size=1G,id=n,read-zeroes=off", &c, err, sizeof(err)), 0);
    CHECK(c.blk.null_no_read_zeroes);
    CHECK_EQ(cli_parse_drive("file=/x,id=f,read-zeroes=off", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "only to driver=null") != NULL);
    CHECK_EQ(cli_parse_drive("driver=memory,size=64M,id=m", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.driver, BLK_DRIVER_MEMORY);
    CHECK_EQ(c.blk.size, 64ull << 20);
    CHECK_EQ(c.blk.cache, BLK_CACHE_WRITEBACK);
    CHECK_EQ(cli_parse_drive("driver=memory,size=1M,id=m,cache=writethrough", &c, err, sizeof(err)), 0);
}

static void test_drive_errors(void)
{
    struct drive_conf c;
    char err[512];

    CHECK_EQ(cli_parse_drive("file=/x,id=d,cache=fast", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "cache=fast") && strstr(err, "writeback|none"));
    CHECK_EQ(cli_parse_drive("file=/x,id=d,colour=red", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "unknown key 'colour'") && strstr(err, "valid keys"));
    CHECK_EQ(cli_parse_drive("file=/x", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "missing id=") != NULL);
    CHECK_EQ(cli_parse_drive("id=d", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "missing file=") != NULL);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,format=qcow2", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "supported: raw") != NULL);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,readonly=maybe", &c, err, sizeof(err)), -EINVAL);
    CHECK_EQ(cli_parse_drive("driver=null,id=n", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "driver=null needs size=") != NULL);
    CHECK_EQ(cli_parse_drive("driver=memory,id=m", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "driver=memory needs size=") != NULL);
    CHECK_EQ(cli_parse_drive("driver=memory,size=1G,id=m,file=/x", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "file= does not apply to driver=memory") != NULL);
    CHECK_EQ(cli_parse_drive("driver=memory,size=1G,id=m,cache=none", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "no O_DIRECT") != NULL && strstr(err, "cache=writeback") != NULL);
    CHECK_EQ(cli_parse_drive("driver=memory,size=1G,id=m,read-zeroes=off", &c, err, sizeof(err)),
             -EINVAL);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,size=1G", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "its own size") != NULL);
    CHECK_EQ(cli_parse_drive("driver=disk,id=d,size=1G", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "memory") != NULL);   /* the message lists the drivers */
}

/* werror/rerror (QEMU's -drive values) and inject rules (checked at once) */
static void test_drive_error_policy(void)
{
    struct drive_conf c;
    char err[512];

    CHECK_EQ(cli_parse_drive("file=/x,id=d", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.werror, BLK_ERR_AUTO);
    CHECK_EQ(c.blk.rerror, BLK_ERR_AUTO);
    CHECK(!c.inject[0]);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,werror=stop,rerror=ignore", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.werror, BLK_ERR_STOP);
    CHECK_EQ(c.blk.rerror, BLK_ERR_IGNORE);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,werror=enospc,rerror=report", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.werror, BLK_ERR_ENOSPC);
    CHECK_EQ(c.blk.rerror, BLK_ERR_REPORT);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,werror=ignore", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.blk.werror, BLK_ERR_IGNORE);
    CHECK_EQ(cli_parse_drive("file=/x,id=d,rerror=enospc", &c, err, sizeof(err)), -EINVAL);
    CHECK(!strcmp(err, "--drive: rerror=enospc: expected report, ignore or stop (enospc applies "
                       "to werror only)"));
    CHECK_EQ(cli_parse_drive("file=/x,id=d,werror=halt", &c, err, sizeof(err)), -EINVAL);
    CHECK(!strcmp(err, "--drive: werror=halt: expected report, ignore, stop or enospc"));
    CHECK_EQ(cli_parse_drive("file=/x,id=d,werror=auto", &c, err, sizeof(err)), -EINVAL);

    CHECK_EQ(cli_parse_drive("file=/x,id=d,inject=write:enospc:sector=2048+64:count=3;read:eio",
                             &c, err, sizeof(err)), 0);
    CHECK(!strcmp(c.inject, "write:enospc:sector=2048+64:count=3;read:eio"));
    CHECK_EQ(c.blk.inject, NULL);       /* pointed at c.inject by vscsid_add_drive */
    CHECK_EQ(cli_parse_drive("file=/x,id=d,inject=write:enospc:count=0", &c, err, sizeof(err)), -EINVAL);
    CHECK(!strcmp(err, "--drive: inject: rule 1 'write:enospc:count=0': count=0: expected a "
                       "number >= 1, or inf"));
    /* a comma inside the value is QEMU's ",," */
    CHECK_EQ(cli_parse_drive("file=/x,id=d,inject=read:eio,count=2", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "'count=2' is not of the form key=value") != NULL ||
          strstr(err, "unknown key") != NULL);
}

static void test_device(void)
{
    struct device_conf c;
    char err[512];

    CHECK_EQ(cli_parse_device("scsi-hd,drive=d0,scsi-id=3,lun=300,serial=abc,wwn=0x5000c50015ea71ac,"
                              "logical_block_size=4096,physical_block_size=4096,removable=on",
                              &c, err, sizeof(err)), 0);
    CHECK_EQ(c.target, 3);
    CHECK_EQ(c.lun, 300);
    CHECK(!strcmp(c.serial, "abc"));
    CHECK(c.scsi.wwn == 0x5000c50015ea71acull);
    CHECK_EQ(c.scsi.logical_block_size, 4096);
    CHECK(c.scsi.removable);
    CHECK_EQ(cli_parse_device("scsi-disk,drive=d0", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.target, 0);
    CHECK_EQ(c.scsi.physical_block_size, 512);
    CHECK_EQ(cli_parse_device("scsi-tape,drive=d0", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "unknown device type") != NULL);
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d0,scsi-id=256", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "scsi-id=256") && strstr(err, "255"));
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d0,lun=16384", &c, err, sizeof(err)), -EINVAL);
    CHECK_EQ(cli_parse_device("scsi-hd,scsi-id=1", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "missing drive=") != NULL);
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d,logical_block_size=1024", &c, err, sizeof(err)), -EINVAL);
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d,physical_block_size=256", &c, err, sizeof(err)), -EINVAL);
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d,vendor=TOOLONGVENDOR", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "too long") != NULL);
}

/* media=cdrom: read-only, may have no file; what makes no sense is refused. */
static void test_drive_cdrom(void)
{
    struct drive_conf c;
    char err[512];

    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom", &c, err, sizeof(err)), 0);
    CHECK(c.cdrom);
    CHECK(c.blk.readonly);
    CHECK_EQ(c.filename[0], 0);
    CHECK_EQ(c.blk.driver, BLK_DRIVER_FILE);
    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom,file=/x.iso", &c, err, sizeof(err)), 0);
    CHECK(c.cdrom && c.blk.readonly && !strcmp(c.filename, "/x.iso"));
    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom,file=/x.iso,readonly=on,format=raw", &c, err,
                             sizeof(err)), 0);
    CHECK_EQ(cli_parse_drive("id=d0,media=disk,file=/x.img", &c, err, sizeof(err)), 0);
    CHECK(!c.cdrom && !c.blk.readonly);
    /* only a CD-ROM drive may be empty */
    CHECK_EQ(cli_parse_drive("id=d0,media=disk", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "missing file=") && strstr(err, "media=cdrom"));
    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom,file=/x.iso,readonly=off", &c, err, sizeof(err)),
             -EINVAL);
    CHECK(strstr(err, "media=cdrom is read-only") && strstr(err, "readonly=off"));
    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom,discard=unmap", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "cannot discard") != NULL);
    CHECK_EQ(cli_parse_drive("id=cd0,media=floppy", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "media=floppy") && strstr(err, "disk|cdrom"));
    CHECK_EQ(cli_parse_drive("id=cd0,media=cdrom,format=iso", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "supported: raw") != NULL);
}

/* scsi-cd: SCSI_DEV_CD, removable, 2048-byte blocks, its own product string. */
static void test_device_cd(void)
{
    struct device_conf c;
    char err[512];

    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,scsi-id=1,lun=2,id=cd", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.scsi.type, SCSI_DEV_CD);
    CHECK(c.scsi.removable);
    CHECK_EQ(c.scsi.logical_block_size, 2048);
    CHECK_EQ(c.scsi.physical_block_size, 2048);
    CHECK(!strcmp(c.product, "VSCSI CD-ROM"));
    CHECK_EQ(c.target, 1);
    CHECK_EQ(c.lun, 2);
    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,product=MY DVD,logical_block_size=2048,"
                              "physical_block_size=2048,removable=on", &c, err, sizeof(err)), 0);
    CHECK(!strcmp(c.product, "MY DVD"));
    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,logical_block_size=512", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "logical_block_size=512") && strstr(err, "2048-byte blocks"));
    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,physical_block_size=4096", &c, err, sizeof(err)),
             -EINVAL);
    CHECK(strstr(err, "physical_block_size=4096") != NULL);
    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,removable=off", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "always removable") != NULL);
    CHECK_EQ(cli_parse_device("scsi-cd,drive=cd0,pr-state=/tmp/pr", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "pr-state") && strstr(err, "not scsi-cd"));
    CHECK_EQ(cli_parse_device("scsi-cd,lun=1", &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "missing drive=") && strstr(err, "media=cdrom"));
    /* a scsi-hd stays what it was, removable or not */
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d0", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.scsi.type, SCSI_DEV_HD);
    CHECK(!c.scsi.removable && !c.product[0]);
    CHECK_EQ(cli_parse_device("scsi-hd,drive=d0,removable=on", &c, err, sizeof(err)), 0);
    CHECK(c.scsi.removable);
    CHECK(strstr(cli_device_help(), "scsi-cd") != NULL);
}

static void test_lun_codec(void)
{
    uint8_t l[8], t;
    uint16_t lun;
    bool w;

    vscsi_encode_lun(5, 3, l);
    CHECK_MEM(l, "\x01\x05\x00\x03\0\0\0\0", 8);
    CHECK_EQ(vscsi_decode_lun(l, &t, &lun, &w), 0);
    CHECK_EQ(t, 5);
    CHECK_EQ(lun, 3);
    CHECK(!w);
    vscsi_encode_lun(0, 300, l);
    CHECK_MEM(l, "\x01\x00\x41\x2c\0\0\0\0", 8);
    CHECK_EQ(vscsi_decode_lun(l, &t, &lun, &w), 0);
    CHECK_EQ(lun, 300);
    /* Linux sets 0x40 even for small LUNs: same LUN. */
    uint8_t linux_lun[8] = { 1, 2, 0x40, 7, 0, 0, 0, 0 };
    CHECK_EQ(vscsi_decode_lun(linux_lun, &t, &lun, &w), 0);
    CHECK_EQ(lun, 7);
    uint8_t wl[8] = { 1, 0, 0xc1, 0x01, 0, 0, 0, 0 };
    CHECK_EQ(vscsi_decode_lun(wl, &t, &lun, &w), 0);
    CHECK(w);
    uint8_t bad0[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    CHECK_EQ(vscsi_decode_lun(bad0, &t, &lun, &w), -EINVAL);
    uint8_t badfmt[8] = { 1, 0, 0x80, 0, 0, 0, 0, 0 };
    CHECK_EQ(vscsi_decode_lun(badfmt, &t, &lun, &w), 0);
    CHECK_EQ(lun, VSCSI_LUN_INVALID);
    uint8_t badtail[8] = { 1, 0, 0, 1, 0, 0, 0, 1 };
    CHECK_EQ(vscsi_decode_lun(badtail, &t, &lun, &w), 0);
    CHECK_EQ(lun, VSCSI_LUN_INVALID);
}

int main(void)
{
    RUN_TEST(test_drive_ok);
    RUN_TEST(test_drive_errors);
    RUN_TEST(test_drive_error_policy);
    RUN_TEST(test_device);
    RUN_TEST(test_drive_cdrom);
    RUN_TEST(test_device_cd);
    RUN_TEST(test_lun_codec);
    return test_exit();
}
